use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[compensable(compensate = release)]
    async fn reserve(&self, _cx: &StepContext<'_>, _i: serde_json::Value) -> Result<u32, StepError> { Ok(1) }

    async fn release(&self, _cx: &StepContext<'_>, _i: String, _o: Option<u64>) -> Result<u8, StepError> { Ok(0) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
