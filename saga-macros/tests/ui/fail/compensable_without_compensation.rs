use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[compensable(participant = "inventory")]
    async fn reserve(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
