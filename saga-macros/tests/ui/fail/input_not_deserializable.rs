use saga::{saga, StepContext, StepError};

struct S;

struct NotSerde;

#[saga]
impl S {
    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: NotSerde) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
