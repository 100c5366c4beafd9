use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn ship(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
