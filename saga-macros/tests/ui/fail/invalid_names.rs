use saga::{saga, StepContext, StepError};

struct S;

#[saga(name = "order saga")]
impl S {
    #[pivot(name = "charge:card")]
    async fn a(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
