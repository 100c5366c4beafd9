use saga::{saga, StepContext, StepError};

struct S;

#[saga]
impl S {
    #[compensable(compensate = undo, name = "reserve_the_stock_in_every_single_warehouse_of_the_whole_continent_at_once")]
    async fn reserve(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn undo(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
