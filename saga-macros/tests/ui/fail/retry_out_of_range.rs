use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[compensable(compensate = undo, retry(backoff_rate = 0.5), compensation_retry(max_delay = "400d"))]
    async fn reserve(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn undo(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot(retry(interval = "0s"))]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
