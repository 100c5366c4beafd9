//! Conditional steps: a step whose condition is false is skipped on the way forward and on the
//! way back, on the in-memory executor (log, trace, crash and resume) and in the generated
//! state machine (its Choice states, their cost), with every rule a typed error.

use std::sync::{Arc, Mutex};

use saga_core::testing::FaultPlan;
use saga_core::{
    Action, Compensable, DefinitionError, ExecutorError, InMemoryExecutor, Invocation,
    InvocationResult, Outcome, Saga, SagaEvent, Step, StepContext, StepError,
};
use serde_json::{Value, json};

/// Records every handler call as `step` or `step.compensate`.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Step for Calls {
    type Input = Value;
    type Output = Value;

    async fn execute(&self, cx: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        self.0.lock().unwrap().push(cx.step().to_owned());
        Ok(json!({ "nights": 3 }))
    }
}

impl Compensable for Calls {
    async fn compensate(
        &self,
        cx: &StepContext<'_>,
        _: Value,
        _: Option<Value>,
    ) -> Result<(), StepError> {
        self.0
            .lock()
            .unwrap()
            .push(format!("{}.compensate", cx.step()));
        Ok(())
    }
}

/// The trip: the flight always, the car when asked for, the hotel when the flight says the
/// stay has nights, then the card (the pivot) and the itinerary when there is an email.
fn trip(calls: &Calls) -> Saga {
    Saga::builder("trip")
        .compensable("flight", calls.clone())
        .compensable("car", calls.clone())
        .when("car_wanted")
        .compensable("hotel", calls.clone())
        .when("steps.flight.nights > 0 && !(steps.flight.nights > 30)")
        .pivot("charge", calls.clone())
        .retriable("itinerary", calls.clone())
        .when("present(email)")
        .build()
        .expect("a valid saga")
}

fn skipped(step: &str) -> Invocation {
    Invocation {
        step: step.to_owned(),
        action: Action::Execute,
        attempt: 0,
        result: InvocationResult::Skipped,
    }
}

/// An executor of the trip whose card is declined.
fn declined(calls: &Calls) -> InMemoryExecutor {
    let declined = StepError::terminal("Declined", "no funds");
    InMemoryExecutor::builder()
        .saga(trip(calls))
        .faults(FaultPlan::new().fail("charge", Action::Execute, declined, 1))
        .build()
}

#[tokio::test(start_paused = true)]
async fn a_false_condition_skips_its_step_forward_and_back() {
    let calls = Calls::default();
    let executor = declined(&calls);
    let report = executor
        .run("trip", "t-1", &json!({ "car_wanted": false }))
        .await
        .unwrap();
    assert!(matches!(report.outcome, Outcome::Compensated { .. }));
    assert_eq!(
        calls.take(),
        ["flight", "hotel", "hotel.compensate", "flight.compensate"],
        "the car neither booked nor cancelled"
    );
    assert_eq!(report.trace.0[1], skipped("car"));
    let events: Vec<SagaEvent> = executor
        .log()
        .records("t-1")
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert!(events.contains(&SagaEvent::StepSkipped { step: "car".into() }));
    assert!(report.output["steps"].get("car").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_true_condition_runs_and_compensates_its_step() {
    let calls = Calls::default();
    declined(&calls)
        .run("trip", "t-1", &json!({ "car_wanted": true }))
        .await
        .unwrap();
    assert_eq!(
        calls.take(),
        [
            "flight",
            "car",
            "hotel",
            "hotel.compensate",
            "car.compensate",
            "flight.compensate"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_condition_reads_earlier_outputs_and_a_skipped_last_step_completes_the_saga() {
    let calls = Calls::default();
    let report = InMemoryExecutor::new(trip(&calls))
        .run("trip", "t-1", &json!({ "car_wanted": 1 }))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    // `car_wanted` is not a boolean: false. The flight's 3 nights: the hotel is booked.
    assert_eq!(calls.take(), ["flight", "hotel", "charge"]);
    let last = report.trace.0.last().unwrap();
    assert_eq!(*last, skipped("itinerary"));
    assert_eq!(
        last.to_string(),
        "-- itinerary skipped: its condition is false"
    );
}

#[tokio::test(start_paused = true)]
async fn a_saga_resumes_at_every_log_position_around_a_skip() {
    let input = json!({ "car_wanted": false, "email": "a@b.c" });
    let clean = InMemoryExecutor::new(trip(&Calls::default()))
        .run("trip", "t-1", &input)
        .await
        .unwrap();
    let positions = clean.trace.0.len() * 2 + 2;
    let mut crashed = 0;
    for position in 1..positions {
        let calls = Calls::default();
        let log = saga_core::SagaLog::new();
        let store: Arc<dyn saga_core::IdempotencyStore> =
            Arc::new(saga_core::InMemoryIdempotencyStore::new());
        let crashing = InMemoryExecutor::builder()
            .saga(trip(&calls))
            .log(log.clone())
            .store(store.clone())
            .faults(FaultPlan::new().crash_at(position))
            .build();
        match crashing.run("trip", "t-1", &input).await {
            Err(ExecutorError::Crashed { .. }) => crashed += 1,
            Ok(_) => continue,
            Err(other) => panic!("{other}"),
        }
        let resumed = InMemoryExecutor::builder()
            .saga(trip(&calls))
            .log(log)
            .store(store)
            .build()
            .resume("t-1")
            .await
            .unwrap();
        assert_eq!(resumed.trace, clean.trace, "crash at {position}");
        assert_eq!(calls.take(), ["flight", "hotel", "charge", "itinerary"]);
    }
    // Every position of the 11 events, the skip's included, but the first (SagaStarted).
    assert_eq!(crashed, 10);
}

#[test]
fn conditions_read_only_the_input_and_earlier_outputs() {
    let calls = Calls::default();
    let build = |condition: &str| {
        Saga::builder("trip")
            .compensable("flight", calls.clone())
            .compensable("car", calls.clone())
            .when(condition)
            .compensable("hotel", calls.clone())
            .build()
            .map(|_| ())
    };
    assert_eq!(build("steps.flight.nights > 2"), Ok(()));
    assert_eq!(
        build("steps.hotel.nights > 2"),
        Err(DefinitionError::ConditionReadsLaterStep {
            step: "car".into(),
            reads: "steps.hotel.nights".into()
        })
    );
    let own = build("present(steps.car)").unwrap_err();
    assert!(
        own.to_string()
            .contains("not the output of an earlier step"),
        "{own}"
    );
    let error = build("error.Cause == \"x\"").unwrap_err();
    assert!(matches!(error, DefinitionError::ConditionReadsError { .. }));
    let error = build("car_wanted = true").unwrap_err();
    assert!(
        matches!(&error, DefinitionError::InvalidCondition { step, reason }
            if step == "car" && reason.contains("compare with `==`")),
        "{error}"
    );
    let all = Saga::builder("trip")
        .compensable("flight", calls.clone())
        .when("a")
        .build()
        .unwrap_err();
    assert_eq!(all, DefinitionError::EveryStepConditional);
}

#[test]
fn the_state_machine_decides_each_condition_in_one_choice_state() {
    use saga_core::asl::State;
    let definition = trip(&Calls::default()).definition().clone();
    let machine = definition.state_machine();
    let json = serde_json::to_value(&machine).unwrap();
    assert_eq!(json["States"]["flight"]["Next"], "car.when");
    let car = &json["States"]["car.when"];
    assert_eq!(car["Type"], "Choice");
    assert_eq!(car["Choices"][0]["Next"], "car");
    assert_eq!(car["Default"], "hotel.when");
    assert_eq!(car["Comment"], "when car_wanted");
    // The compensation chain asks again, on the same fields; the failed step's own Catch
    // goes straight to its compensation.
    assert_eq!(
        json["States"]["hotel.compensate"]["Next"],
        "car.compensate.when"
    );
    assert_eq!(
        json["States"]["car.compensate.when"]["Choices"][0],
        json["States"]["car.when"]["Choices"][0]
            .as_object()
            .map(|rule| {
                let mut rule = rule.clone();
                rule.insert("Next".into(), json!("car.compensate"));
                Value::Object(rule)
            })
            .unwrap()
    );
    assert_eq!(
        json["States"]["car.compensate.when"]["Default"],
        "flight.compensate"
    );
    let catch_of = |state: &str| match machine.state(state) {
        Some(State::Task(task)) => task.catch.last().unwrap().next.clone(),
        _ => panic!("{state} is a task"),
    };
    assert_eq!(catch_of("car"), "car.compensate");
    assert_eq!(catch_of("hotel"), "hotel.compensate");
    // The pivot fails: the hotel's and the car's Choices come first.
    assert_eq!(catch_of("charge"), "hotel.compensate.when");
    // A skipped last step ends in the one Succeed state.
    assert_eq!(
        json["States"]["itinerary.when"]["Default"],
        "Saga.completed"
    );
    assert_eq!(json["States"]["Saga.completed"]["Type"], "Succeed");
}

/// Transitions: one per Task entered, one per condition passed (whatever it decides), one
/// for `Saga.completed` when the last step is skipped, one for the Fail state.
#[test]
fn cost_lists_the_paths_through_the_conditions() {
    let cost = saga_core::analysis::Cost::of(&trip(&Calls::default()).definition().state_machine());
    let transitions = |description: &str| {
        cost.paths
            .iter()
            .find(|p| p.description == description)
            .unwrap_or_else(|| panic!("no path `{description}` in\n{cost}"))
            .transitions
    };
    // 5 tasks + 3 conditions.
    assert_eq!(cost.success().transitions, 8);
    assert_eq!(transitions("success"), 8);
    assert_eq!(transitions("success (car skipped)"), 7);
    // flight and charge, 3 conditions, Saga.completed.
    assert_eq!(
        transitions("success (car, hotel, itinerary skipped)"),
        2 + 3 + 1
    );
    // charge fails: flight, car.when, car, hotel.when, hotel, charge, then hotel.compensate.when,
    // hotel.compensate, car.compensate.when, car.compensate, flight.compensate, Fail.
    assert_eq!(transitions("charge fails"), 12);
    assert_eq!(transitions("charge fails (car skipped)"), 10);
    // The compensation's Choice follows the forward one: no path compensates a skipped step.
    for path in &cost.paths {
        for step in ["car", "hotel"] {
            let skipped = !path.states.iter().any(|s| s == step);
            let compensated = path
                .states
                .iter()
                .any(|s| *s == format!("{step}.compensate"));
            assert!(
                !(skipped && compensated),
                "{}: {:?}",
                path.description,
                path.states
            );
        }
    }
}

#[test]
fn conditions_are_kept_in_the_definition_json() {
    let definition = trip(&Calls::default()).definition().clone();
    let json = serde_json::to_value(&definition).unwrap();
    assert_eq!(json["steps"][1]["condition"], "car_wanted");
    assert!(json["steps"][0].get("condition").is_none());
    let back: saga_core::SagaDefinition = serde_json::from_value(json).unwrap();
    assert_eq!(back, definition);
}

/// The saga's end is published with the last step that ran, whichever steps the conditions
/// skipped.
#[tokio::test(start_paused = true)]
async fn the_end_of_the_saga_is_published_after_the_last_step_that_ran() {
    use saga_core::protocol::events::{SagaNotification, run_notifications};
    let ends = |input: Value, plan: FaultPlan| async move {
        let saga = trip(&Calls::default());
        let definition = saga.definition().clone();
        let report = InMemoryExecutor::builder()
            .saga(saga)
            .faults(plan)
            .build()
            .run("trip", "t-1", &input)
            .await
            .unwrap();
        run_notifications(
            &definition,
            "t-1",
            &report.trace,
            &report.outcome,
            &report.output,
        )
        .into_iter()
        .filter(|n| {
            matches!(
                n,
                SagaNotification::SagaCompleted { .. } | SagaNotification::SagaCompensated { .. }
            )
        })
        .map(|n| n.detail_type())
        .collect::<Vec<_>>()
    };
    // The itinerary (the last step) skipped: the charge's success ends the saga.
    assert_eq!(ends(json!({}), FaultPlan::new()).await, ["SagaCompleted"]);
    assert_eq!(
        ends(json!({ "email": "a@b.c" }), FaultPlan::new()).await,
        ["SagaCompleted"]
    );
    // The hotel declines and the car was skipped: the flight's compensation ends it.
    let declined = StepError::terminal("Declined", "full");
    let plan = FaultPlan::new().fail("hotel", Action::Execute, declined, 1);
    assert_eq!(ends(json!({}), plan).await, ["SagaCompensated"]);
}

#[test]
fn the_graph_draws_each_condition_as_a_decision() {
    let machine = trip(&Calls::default()).definition().state_machine();
    let mermaid = saga_core::render::mermaid(&machine);
    assert!(
        mermaid.contains(r#"car_when{"car.when: when car_wanted"}"#),
        "{mermaid}"
    );
    assert!(mermaid.contains("car_when -- when --> car\n"), "{mermaid}");
    assert!(
        mermaid.contains("car_when -- otherwise --> hotel_when\n"),
        "{mermaid}"
    );
    // The skipped last step's end is the one `Completed`.
    assert!(
        mermaid.contains("itinerary_when -- otherwise --> Completed\n"),
        "{mermaid}"
    );
    assert!(!mermaid.contains("Saga_completed"), "{mermaid}");
    let dot = saga_core::render::dot(&machine);
    assert!(
        dot.contains(r#""hotel.when" [shape=diamond, label="hotel.when: when steps.flight.nights > 0 && !(steps.flight.nights > 30)"];"#),
        "{dot}"
    );
}
