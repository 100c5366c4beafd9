use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[pivot]
    fn not_async(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable]
    async fn by_value(self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable]
    async fn no_input(&self, _cx: &StepContext<'_>) -> Result<(), StepError> { Ok(()) }

    #[retriable]
    async fn no_result(&self, _cx: &StepContext<'_>, _i: ()) -> u32 { 1 }
}

fn main() {}
