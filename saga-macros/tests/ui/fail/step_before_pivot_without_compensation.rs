use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[retriable]
    async fn reserve(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    // Correct where it is: no error of its own (it was told to become retriable).
    #[compensable(compensate = release)]
    async fn hold(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn release(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
