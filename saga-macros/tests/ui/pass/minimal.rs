use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[pivot]
    async fn only(&self, _cx: &StepContext<'_>, _input: serde_json::Value) -> Result<u32, StepError> {
        Ok(1)
    }
}

fn main() {
    let definition = S::definition();
    assert_eq!(definition.name, "s");
    assert_eq!(definition.steps[0].name, "only");
    let _saga = S.into_saga();
}
