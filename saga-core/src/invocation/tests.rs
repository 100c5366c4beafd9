use super::*;
use crate::idempotency::{Action, InMemoryIdempotencyStore};
use std::sync::atomic::{AtomicU32, Ordering};

#[tokio::test]
async fn runs_once_and_replays_the_answer() {
    let store = InMemoryIdempotencyStore::new();
    let key = IdempotencyKey::new("s", "a", Action::Execute);
    let runs = AtomicU32::new(0);
    let payload = serde_json::json!({"x": 1});
    for _ in 0..3 {
        let out = run_idempotent(
            &store,
            &key,
            PayloadHash::of(&payload),
            Duration::from_secs(5),
            |_| async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(serde_json::json!("done"))
            },
        )
        .await;
        assert_eq!(out, Ok(serde_json::json!("done")));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn panics_and_retryable_errors_release_the_key() {
    let store = InMemoryIdempotencyStore::new();
    let key = IdempotencyKey::new("s", "a", Action::Execute);
    let payload = Value::Null;
    let lease = Duration::from_secs(5);
    let err = run_idempotent(&store, &key, PayloadHash::of(&payload), lease, |_| async {
        panic!("boom")
    })
    .await
    .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (FailureKind::Retryable, "Panic")
    );
    assert!(err.message.contains("boom"));
    let err = run_idempotent(&store, &key, PayloadHash::of(&payload), lease, |_| async {
        Err(StepError::retryable("later"))
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind, FailureKind::Retryable);
    assert!(store.is_empty(), "released keys leave nothing behind");
    let declined = StepError::terminal("Declined", "no");
    let first = run_idempotent(&store, &key, PayloadHash::of(&payload), lease, |_| async {
        Err(declined.clone())
    })
    .await;
    let again = run_idempotent(&store, &key, PayloadHash::of(&payload), lease, |_| async {
        Ok(Value::Null)
    })
    .await;
    assert_eq!(first, again, "a terminal answer is stored and replayed");
}

#[tokio::test(start_paused = true)]
async fn no_execute_runs_after_its_compensation() {
    let store = InMemoryIdempotencyStore::new();
    let execute = IdempotencyKey::new("s", "reserve", Action::Execute);
    let compensate = IdempotencyKey::new("s", "reserve", Action::Compensate);
    let lease = Duration::from_secs(5);
    let payload = serde_json::json!({"order": 1});
    // The execute's command was lost; the step timed out and is compensated.
    run_idempotent(
        &store,
        &compensate,
        PayloadHash::of(&payload),
        lease,
        |_| async { Ok(Value::Null) },
    )
    .await
    .unwrap();
    // Then the command turns up, with any payload: it never runs.
    for payload in [payload.clone(), serde_json::json!({"forged": true})] {
        let ran = AtomicU32::new(0);
        let err = run_idempotent(
            &store,
            &execute,
            PayloadHash::of(&payload),
            lease,
            |_| async {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(Value::Null)
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str(), ran.load(Ordering::SeqCst)),
            (FailureKind::Terminal, codes::COMPENSATED, 0)
        );
    }
    // The compensation itself is still answered from the store when it is redelivered.
    let again = run_idempotent(
        &store,
        &compensate,
        PayloadHash::of(&payload),
        lease,
        |_| async { Err(StepError::terminal("Twice", "ran twice")) },
    )
    .await;
    assert_eq!(again, Ok(Value::Null));
}

/// A step whose answer was lost on its last attempt applied its effect, and the saga
/// document lacks its output: the compensation gets it from the store, on every attempt.
#[tokio::test]
async fn a_compensation_gets_the_output_its_execute_stored() {
    let store = InMemoryIdempotencyStore::new();
    let execute = IdempotencyKey::new("s", "reserve", Action::Execute);
    let compensate = IdempotencyKey::new("s", "reserve", Action::Compensate);
    let lease = Duration::from_secs(5);
    let hash = PayloadHash::of(&Value::Null);
    let booked = serde_json::json!({"booking": "b-1"});
    let stored = run_idempotent(&store, &execute, hash, lease, |executed| async move {
        assert_eq!(executed, None, "an execute is given nothing");
        Ok(serde_json::json!({"booking": "b-1"}))
    })
    .await;
    assert_eq!(stored, Ok(booked.clone()));
    for attempt in 0..2 {
        let seen = std::sync::Mutex::new(None);
        let answer = run_idempotent(&store, &compensate, hash, lease, |executed| {
            *seen.lock().unwrap() = executed;
            async { Err(StepError::retryable("the hotel's line is busy")) }
        })
        .await;
        assert!(answer.is_err());
        assert_eq!(
            seen.into_inner().unwrap(),
            Some(booked.clone()),
            "attempt {attempt}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_compensation_waits_for_a_running_execute() {
    let store = InMemoryIdempotencyStore::new();
    let execute = IdempotencyKey::new("s", "reserve", Action::Execute);
    let compensate = IdempotencyKey::new("s", "reserve", Action::Compensate);
    let lease = Duration::from_secs(5);
    let Claim::Acquired(_running) = store
        .claim(&execute, PayloadHash::of(&Value::Null), lease)
        .await
        .unwrap()
    else {
        panic!("fresh key");
    };
    let ran = AtomicU32::new(0);
    let compensation = || {
        run_idempotent(
            &store,
            &compensate,
            PayloadHash::of(&Value::Null),
            lease,
            |_| async {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(Value::Null)
            },
        )
    };
    let err = compensation().await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (FailureKind::Retryable, codes::EXECUTE_IN_PROGRESS)
    );
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "nothing undone while it may still happen"
    );
    // Once the execute's lease has ended, the compensation locks it out and runs.
    tokio::time::advance(lease).await;
    assert_eq!(compensation().await, Ok(Value::Null));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_handler_runs_no_longer_than_its_lease() {
    let store = InMemoryIdempotencyStore::new();
    let key = IdempotencyKey::new("s", "slow", Action::Execute);
    let err = run_idempotent(
        &store,
        &key,
        PayloadHash::of(&Value::Null),
        Duration::from_secs(3),
        |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Value::Null)
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (FailureKind::Timeout, "Timeout")
    );
    assert!(store.is_empty(), "the key is released for the retry");
}

#[tokio::test]
async fn a_reused_key_is_terminal() {
    let store = InMemoryIdempotencyStore::new();
    let key = IdempotencyKey::new("s", "a", Action::Execute);
    let lease = Duration::from_secs(5);
    run_idempotent(
        &store,
        &key,
        PayloadHash::of(&Value::from(1)),
        lease,
        |_| async { Ok(Value::Null) },
    )
    .await
    .unwrap();
    let err = run_idempotent(
        &store,
        &key,
        PayloadHash::of(&Value::from(2)),
        lease,
        |_| async { Ok(Value::Null) },
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (FailureKind::Terminal, codes::KEY_REUSED)
    );
}

/// A step that says which document it read and returns `size` bytes.
struct Sized(usize);

impl crate::Step for Sized {
    type Input = Value;
    type Output = String;

    async fn execute(&self, cx: &StepContext<'_>, input: Value) -> Result<String, StepError> {
        assert_eq!((cx.step(), cx.attempt()), ("big", 2));
        assert_eq!(input["order"], "o-1");
        Ok("x".repeat(self.0))
    }
}

#[tokio::test]
async fn invoke_runs_the_step_once_and_refuses_an_output_step_functions_cannot_carry() {
    let saga = crate::Saga::builder("s")
        .pivot("big", Sized(300 * 1024))
        .build()
        .unwrap();
    let store = InMemoryIdempotencyStore::new();
    let document = serde_json::json!({ "order": "o-1" });
    let call = call_of(&saga, 0, "s-1", &document);
    for _ in 0..2 {
        let err = invoke(&store, call).await.unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (FailureKind::Terminal, codes::DATA_LIMIT_EXCEEDED),
            "{err}"
        );
    }
    let small = crate::Saga::builder("s")
        .pivot("big", Sized(3))
        .build()
        .unwrap();
    let call = Call {
        saga: &small,
        saga_id: "s-2",
        ..call
    };
    assert_eq!(invoke(&store, call).await, Ok(Value::from("xxx")));
}

/// Answers a string of `.0` bytes.
struct Blob(usize);

impl crate::Step for Blob {
    type Input = Value;
    type Output = String;

    async fn execute(&self, _: &StepContext<'_>, _: Value) -> Result<String, StepError> {
        Ok("x".repeat(self.0))
    }
}

impl crate::Compensable for Blob {
    async fn compensate(
        &self,
        _: &StepContext<'_>,
        _: Value,
        _: Option<String>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

/// The call of step `index` of `saga` reading `document`.
fn call_of<'a>(
    saga: &'a crate::Saga,
    index: usize,
    saga_id: &'a str,
    document: &'a Value,
) -> Call<'a> {
    Call {
        saga,
        index,
        saga_id,
        action: Action::Execute,
        attempt: 2,
        document,
        document_bytes: crate::analysis::payload_size(document),
        input_hash: PayloadHash::of_input(document),
        error: None,
    }
}

#[tokio::test]
async fn an_output_that_fits_alone_is_refused_when_the_document_it_grows_does_not() {
    use crate::analysis::payload::budget;
    let saga = crate::Saga::builder("s")
        .pivot("big", Blob(150 * 1024))
        .build()
        .unwrap();
    let store = InMemoryIdempotencyStore::new();
    let small = serde_json::json!({ "order": "o-1" });
    let (output, size) = invoke_after(&store, call_of(&saga, 0, "s-1", &small), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(size, crate::analysis::payload_size(&output));
    // The same output on a document already 120 KiB large: 270 KiB together.
    let large = serde_json::json!({ "order": "o-1", "blob": "y".repeat(120 * 1024) });
    let err = invoke(&store, call_of(&saga, 0, "s-2", &large))
        .await
        .unwrap_err();
    assert_eq!(err.code, codes::DATA_LIMIT_EXCEEDED, "{err}");
    assert!(
        err.message.contains(&format!("at most {}", budget(1))),
        "{err}"
    );
}

#[tokio::test]
async fn a_group_step_gets_its_share_of_the_limit_as_a_parallel_result_carries_every_branch() {
    let saga = crate::Saga::builder("s")
        .compensable("hotel", Blob(100 * 1024))
        .in_branch("trip", "hotel")
        .compensable("car", Blob(3))
        .in_branch("trip", "car")
        .pivot("big", Blob(100 * 1024))
        .build()
        .unwrap();
    let store = InMemoryIdempotencyStore::new();
    let document = serde_json::json!({ "order": "o-1", "steps": {} });
    // 100 KiB fits a branch's half of the limit; 150 KiB does not, though it fits alone.
    assert!(
        invoke(&store, call_of(&saga, 0, "s-1", &document))
            .await
            .is_ok()
    );
    let wide = crate::Saga::builder("s")
        .compensable("hotel", Blob(150 * 1024))
        .in_branch("trip", "hotel")
        .compensable("car", Blob(3))
        .in_branch("trip", "car")
        .pivot("big", Blob(3))
        .build()
        .unwrap();
    let err = invoke(&store, call_of(&wide, 0, "s-2", &document))
        .await
        .unwrap_err();
    assert_eq!(err.code, codes::DATA_LIMIT_EXCEEDED, "{err}");
    assert!(err.message.contains("(2 here)"), "{err}");
    // After the group, the whole limit is the pivot's.
    assert!(
        invoke(&store, call_of(&saga, 2, "s-3", &document))
            .await
            .is_ok()
    );
}

/// Fails for good with a message of `.0` bytes.
struct Wordy(usize);

impl crate::Step for Wordy {
    type Input = Value;
    type Output = ();

    async fn execute(&self, _: &StepContext<'_>, _: Value) -> Result<(), StepError> {
        Err(StepError::terminal("Declined", "why ".repeat(self.0 / 4)))
    }
}

#[tokio::test]
async fn a_failure_is_answered_bounded_and_stored_whole() {
    use crate::analysis::payload::MAX_CAUSE_BYTES;
    let saga = crate::Saga::builder("s")
        .pivot("pay", Wordy(100_000))
        .build()
        .unwrap();
    let store = InMemoryIdempotencyStore::new();
    let document = serde_json::json!({ "order": "o-1" });
    for _ in 0..2 {
        let err = invoke(&store, call_of(&saga, 0, "s-1", &document))
            .await
            .unwrap_err();
        assert_eq!(err.code, "Declined");
        assert!(err.message.ends_with(" [cut]"), "{}", err.message.len());
        let (_, cause) = err.to_task_failure();
        assert!(crate::analysis::payload_size(&cause) <= MAX_CAUSE_BYTES);
    }
}
