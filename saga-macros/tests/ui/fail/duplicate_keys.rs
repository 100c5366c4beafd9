use saga::{saga, StepContext, StepError};

struct S;

#[saga(name = "s", name = "t")]
impl S {
    #[pivot(timeout = "10s", timeout = "20s", retry(interval = "1s", interval = "2s"))]
    async fn a(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable(participant = "shipping", lambda = "ship-fn")]
    async fn b(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
