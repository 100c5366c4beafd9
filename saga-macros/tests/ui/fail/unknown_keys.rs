use saga::{saga, StepContext, StepError};

struct S;

#[saga(name = "s", owner = "team", verison = 2)]
impl S {
    #[pivot(partcipant = "p", retries = 3, retry(max_attempts = 1, factor = 2, intervl = "1s"))]
    async fn a(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
