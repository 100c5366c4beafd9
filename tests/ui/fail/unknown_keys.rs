use saga::{saga, StepContext, StepError};

struct S;

#[saga(name = "s", owner = "team")]
impl S {
    #[pivot(participant = "p", retries = 3, retry(max_attempts = 1, factor = 2))]
    async fn a(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
