//! A compensation whose types are the step's, spelled another way: a path, an alias.

use saga::{saga, StepContext, StepError};

type Order = serde_json::Value;
type Done = Result<(), StepError>;

struct S;

#[saga]
impl S {
    #[compensable(compensate = release)]
    async fn reserve(&self, _cx: &StepContext<'_>, _i: serde_json::Value) -> Result<u32, StepError> { Ok(1) }

    async fn release(&self, _cx: &StepContext<'_>, _i: Order, _o: std::option::Option<u32>) -> Done { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {
    assert_eq!(S::definition().steps.len(), 2);
}
