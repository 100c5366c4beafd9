use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[compensable(compensate = release)]
    async fn reserve(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn release(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    // The attribute was forgotten: this would silently not be a step.
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    // Not async: a plain helper is fine.
    fn describe(&self) -> &'static str { "s" }
}

fn main() {}
