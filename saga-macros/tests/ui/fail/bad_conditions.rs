use saga::{saga, StepContext, StepError};

struct Trip;

#[saga]
impl Trip {
    #[compensable(compensate = cancel_flight)]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn cancel_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    // Does not parse: the advice says what to write.
    #[compensable(compensate = cancel_car, when = "car_wanted = true")]
    async fn car(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn cancel_car(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    // Reads a later step's output.
    #[compensable(compensate = cancel_hotel, when = "steps.charge.ok")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn cancel_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    // Reads the error, which is set only once a step has failed for good.
    #[compensable(compensate = cancel_bus, when = "present(error)")]
    async fn bus(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn cancel_bus(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    // Not a string.
    #[pivot(when = car_wanted)]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

struct AllConditional;

// Every step has a condition: the saga could run nothing at all.
#[saga]
impl AllConditional {
    #[compensable(compensate = cancel_flight, when = "flight_wanted")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn cancel_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot(when = "charge_wanted")]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
