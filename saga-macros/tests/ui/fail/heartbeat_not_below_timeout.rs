use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[pivot(timeout = "30s", heartbeat = "30s")]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
