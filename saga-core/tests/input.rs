//! A malformed saga input is refused before anything runs, and a step that cannot read its
//! input applied nothing: it is not compensated.

use std::sync::{Arc, Mutex};

use saga_core::{
    Action, Compensable, ExecutorError, InMemoryExecutor, InvocationResult, Outcome, Saga, Step,
    StepContext, StepError, protocol,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// What ran, as `(step, action)`.
type Ran = Arc<Mutex<Vec<(String, Action)>>>;

#[derive(Debug, Deserialize)]
struct Trip {
    #[allow(dead_code, reason = "read to check the input's shape")]
    trip_id: String,
}

/// A step reading the input type `I`, recording what ran.
struct Reading<I> {
    ran: Ran,
    input: std::marker::PhantomData<fn() -> I>,
}

fn reading<I>(ran: &Ran) -> Reading<I> {
    Reading {
        ran: ran.clone(),
        input: std::marker::PhantomData,
    }
}

impl<I: serde::de::DeserializeOwned + Send + 'static> Step for Reading<I> {
    type Input = I;
    type Output = Value;

    async fn execute(&self, cx: &StepContext<'_>, _: I) -> Result<Value, StepError> {
        let ran = (cx.step().to_owned(), Action::Execute);
        self.ran.lock().unwrap().push(ran);
        Ok(json!({ "done": true }))
    }
}

impl<I: serde::de::DeserializeOwned + Send + 'static> Compensable for Reading<I> {
    async fn compensate(
        &self,
        cx: &StepContext<'_>,
        _: I,
        _: Option<Value>,
    ) -> Result<(), StepError> {
        let ran = (cx.step().to_owned(), Action::Compensate);
        self.ran.lock().unwrap().push(ran);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_malformed_input_is_refused_before_anything_runs() {
    let ran = Ran::default();
    let saga = Saga::builder("trip")
        .compensable("book", reading::<Trip>(&ran))
        .pivot("pay", reading::<Trip>(&ran))
        .build()
        .unwrap();
    let executor = InMemoryExecutor::new(saga);
    let refused = executor.run("trip", "t-1", &json!({ "trip_id": 1 })).await;
    let Err(ExecutorError::InvalidInput { reason }) = &refused else {
        panic!("{refused:?}")
    };
    assert!(
        reason.contains("step `book`") && reason.contains("expected a string"),
        "{reason}"
    );
    assert!(ran.lock().unwrap().is_empty(), "nothing runs");
    assert!(executor.log().records("t-1").is_none(), "nothing is logged");
    // The same saga starts on a good input.
    let report = executor
        .run("trip", "t-2", &json!({ "trip_id": "t-2" }))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
}

#[derive(Debug, Deserialize)]
struct NeedsSeats {
    #[allow(dead_code, reason = "read to check the input's shape")]
    seats: u32,
}

#[tokio::test(start_paused = true)]
async fn a_step_that_cannot_read_its_input_is_not_compensated() {
    let ran = Ran::default();
    let saga = Saga::builder("trip")
        .compensable("book", reading::<Trip>(&ran))
        .compensable("seat", reading::<NeedsSeats>(&ran))
        .pivot("pay", reading::<Trip>(&ran))
        .build()
        .unwrap();
    let executor = InMemoryExecutor::new(saga);
    let report = executor
        .run("trip", "t-3", &json!({ "trip_id": "t-3" }))
        .await
        .unwrap();
    let Outcome::Compensated { failed_step, error } = &report.outcome else {
        panic!("{}", report.outcome)
    };
    assert_eq!(failed_step, "seat");
    assert!(error.applied_nothing(), "{error}");
    assert_eq!(error.code, protocol::INVALID_INPUT_CODE);
    assert!(error.message.contains("missing field `seats`"), "{error}");
    // `seat` applied nothing: only `book` is undone.
    assert_eq!(
        *ran.lock().unwrap(),
        [
            ("book".to_owned(), Action::Execute),
            ("book".to_owned(), Action::Compensate)
        ]
    );
    let compensated: Vec<&str> = report
        .trace
        .0
        .iter()
        .filter(|i| i.action == Action::Compensate && i.result == InvocationResult::Succeeded)
        .map(|i| i.step.as_str())
        .collect();
    assert_eq!(compensated, ["book"]);
    // What the Catch of the state machine hands on says so too.
    assert_eq!(
        report.output["error"]["Error"],
        protocol::ERROR_INVALID_INPUT,
        "{:#}",
        report.output
    );
}
