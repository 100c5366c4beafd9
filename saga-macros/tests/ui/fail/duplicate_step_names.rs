use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[compensable(compensate = undo)]
    async fn a(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn undo(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot(name = "a")]
    async fn b(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
