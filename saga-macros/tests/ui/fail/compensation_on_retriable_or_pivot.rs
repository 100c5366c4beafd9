use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[pivot(compensate = undo)]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable(compensate = undo, compensation_retry(max_attempts = 2))]
    async fn ship(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn undo(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
