//! The log's append rules: what it takes, what it refuses, and the state it folds.

use super::*;
use crate::error::StepError;

fn started() -> SagaEvent {
    SagaEvent::SagaStarted {
        saga: "s".into(),
        version: 1,
        input: serde_json::json!({}),
    }
}

fn ev_step(step: &str, attempt: u32) -> SagaEvent {
    SagaEvent::StepStarted {
        step: step.into(),
        attempt,
    }
}

fn failed(step: &str, attempt: u32, will_retry: bool) -> SagaEvent {
    SagaEvent::StepFailed {
        step: step.into(),
        attempt,
        error: StepError::retryable("x").into(),
        will_retry,
    }
}

#[tokio::test]
async fn accepts_a_compensation_run() {
    let log = SagaLog::new();
    let events = vec![
        started(),
        ev_step("a", 1),
        SagaEvent::StepSucceeded {
            step: "a".into(),
            attempt: 1,
            output: Value::Null,
        },
        ev_step("b", 1),
        failed("b", 1, true),
        ev_step("b", 2),
        failed("b", 2, false),
        SagaEvent::CompensationStarted {
            step: "b".into(),
            attempt: 1,
        },
        SagaEvent::CompensationSucceeded {
            step: "b".into(),
            attempt: 1,
        },
        SagaEvent::CompensationStarted {
            step: "a".into(),
            attempt: 1,
        },
        SagaEvent::CompensationSucceeded {
            step: "a".into(),
            attempt: 1,
        },
        SagaEvent::SagaCompensated,
    ];
    for e in events {
        log.append("x", e).unwrap();
    }
    let state = log.state("x").unwrap();
    assert_eq!(state.phase, Phase::Finished(Finish::Compensated));
    assert_eq!(state.compensated, ["b", "a"]);
    assert!(log.unfinished().is_empty());
}

#[tokio::test]
async fn refuses_events_out_of_order() {
    let log = SagaLog::new();
    assert!(matches!(
        log.append("x", ev_step("a", 1)),
        Err(LogError::UnknownSaga { .. })
    ));
    log.append("x", started()).unwrap();
    assert!(matches!(
        log.append("x", started()),
        Err(LogError::AlreadyExists { .. })
    ));
    log.append("x", SagaEvent::StepSkipped { step: "s".into() })
        .unwrap();
    log.append("x", ev_step("a", 1)).unwrap();
    // Wrong attempt, a step that is not running, completion with a step in flight, a second
    // start of the running step, a start of the skipped one.
    for bad in [
        SagaEvent::StepSucceeded {
            step: "a".into(),
            attempt: 2,
            output: Value::Null,
        },
        SagaEvent::StepSucceeded {
            step: "b".into(),
            attempt: 1,
            output: Value::Null,
        },
        SagaEvent::SagaCompleted,
        ev_step("a", 1),
        ev_step("s", 1),
    ] {
        assert!(matches!(
            log.append("x", bad),
            Err(LogError::OutOfOrder { .. })
        ));
    }
    log.append("x", failed("a", 1, false)).unwrap();
    let bad = SagaEvent::CompensationStarted {
        step: "s".into(),
        attempt: 1,
    };
    let err = log.append("x", bad).unwrap_err();
    assert!(err.to_string().contains("a skipped step"), "{err}");
    log.append("x", SagaEvent::SagaCompensated).unwrap();
    let err = log.append("x", SagaEvent::SagaCompleted).unwrap_err();
    assert!(err.to_string().contains("nothing follows"), "{err}");
    assert_eq!(
        log.records("x").unwrap().len(),
        5,
        "refused events are not written"
    );
}

#[test]
fn replay_matches_incremental_state() {
    let events = [started(), ev_step("a", 1), failed("a", 1, true)];
    let state = SagaState::replay(&events).unwrap();
    assert_eq!(state.phase, Phase::Forward);
    assert_eq!(
        state.running,
        [Running {
            step: "a".into(),
            attempt: 1,
            retry_pending: true
        }]
    );
    assert_eq!(
        state.describe(),
        "forward, running a (retrying after attempt 1)"
    );
    assert_eq!(state.position, 3);
}

#[test]
fn events_round_trip_through_json() {
    let e = failed("a", 2, true);
    let json = serde_json::to_string(&e).unwrap();
    assert!(json.contains("\"type\":\"StepFailed\""), "{json}");
    assert_eq!(serde_json::from_str::<SagaEvent>(&json).unwrap(), e);
}

/// The executor's append: the log takes an event at the position its writer folded to,
/// refuses a stale writer, and still folds the right state for every reader.
#[test]
fn an_append_at_a_taken_position_is_a_conflict() {
    let log = SagaLog::new();
    log.append_at("x", 0, started()).unwrap();
    log.append_at("x", 1, ev_step("a", 1)).unwrap();
    // A second writer whose state is one event behind.
    let err = log.append_at("x", 1, ev_step("a", 1)).unwrap_err();
    assert_eq!(
        err,
        LogError::Conflict {
            saga_id: "x".into(),
            expected: 1,
            actual: 2
        }
    );
    assert!(matches!(
        log.append_at("x", 0, started()),
        Err(LogError::AlreadyExists { .. })
    ));
    assert!(matches!(
        log.append_at("y", 0, ev_step("a", 1)),
        Err(LogError::UnknownSaga { .. })
    ));
    // Readers and checked appends see the state folded from the records.
    let state = log.state("x").unwrap();
    assert_eq!(state.describe(), "forward, running a (attempt 1)");
    assert_eq!(log.unfinished(), ["x"]);
    assert!(matches!(
        log.append("x", ev_step("a", 1)),
        Err(LogError::OutOfOrder { .. })
    ));
    log.append(
        "x",
        SagaEvent::StepSucceeded {
            step: "a".into(),
            attempt: 1,
            output: Value::Null,
        },
    )
    .unwrap();
    log.append_at("x", 3, SagaEvent::SagaCompleted).unwrap();
    assert!(log.state("x").unwrap().is_finished());
    assert!(log.unfinished().is_empty());
}
