use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[pivot(timeout = "1500ms", heartbeat = "10")]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable(timeout = "3w", retry(max_delay = 60))]
    async fn ship(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable(timeout = "30 seconds", heartbeat = 10)]
    async fn notify(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
