use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo)]
    async fn reserve(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn undo(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
