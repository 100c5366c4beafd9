//! The in-memory executor on hand-written cases: one readable test per behaviour that the
//! property tests in the workspace's `tests/` cover at random.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use saga_core::{
    Action, Compensable, ExecutorError, FailureKind, InMemoryExecutor, InvocationResult, Outcome,
    RetryPolicy, Saga, SagaEvent, SagaLog, Step, StepContext, StepError,
};
use serde_json::{Value, json};

enum Behaviour {
    Succeed,
    Panic,
    Hang(Duration),
    Fail(StepError),
}

type Script = Box<dyn Fn(u32) -> Behaviour + Send + Sync>;

/// A step whose behaviour on each attempt is given by a closure.
struct Scripted {
    calls: Arc<AtomicU32>,
    script: Script,
}

impl Step for Scripted {
    type Input = Value;
    type Output = Value;

    async fn execute(&self, cx: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match (self.script)(cx.attempt()) {
            Behaviour::Succeed => Ok(json!(cx.attempt())),
            Behaviour::Panic => panic!("handler bug on attempt {}", cx.attempt()),
            Behaviour::Hang(d) => {
                tokio::time::sleep(d).await;
                Ok(json!("late"))
            }
            Behaviour::Fail(e) => Err(e),
        }
    }
}

impl Compensable for Scripted {
    async fn compensate(
        &self,
        _: &StepContext<'_>,
        _: Value,
        _: Option<Value>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

fn scripted(
    script: impl Fn(u32) -> Behaviour + Send + Sync + 'static,
) -> (Scripted, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    (
        Scripted {
            calls: calls.clone(),
            script: Box::new(script),
        },
        calls,
    )
}

fn ok() -> Scripted {
    scripted(|_| Behaviour::Succeed).0
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_is_a_retryable_failure_not_a_crash() {
    let (step, calls) = scripted(|attempt| {
        if attempt == 1 {
            Behaviour::Panic
        } else {
            Behaviour::Succeed
        }
    });
    let saga = Saga::builder("s")
        .pivot("p", step)
        .retry(RetryPolicy::new(1))
        .build()
        .unwrap();
    let executor = InMemoryExecutor::new(saga);
    let report = executor.run("s", "id", &json!({})).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let InvocationResult::Failed(first) = &report.trace.0[0].result else {
        panic!("{:?}", report.trace)
    };
    assert_eq!(
        (first.kind, first.code.as_str()),
        (FailureKind::Retryable, "Panic")
    );
    assert!(
        first.message.contains("handler bug on attempt 1"),
        "{}",
        first.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_times_out_and_the_retry_takes_over_its_key() {
    let (step, calls) = scripted(|attempt| {
        if attempt == 1 {
            Behaviour::Hang(Duration::from_secs(3600))
        } else {
            Behaviour::Succeed
        }
    });
    let saga = Saga::builder("s")
        .pivot("p", step)
        .timeout(Duration::from_secs(10))
        .retry(RetryPolicy::new(1).interval_seconds(5))
        .build()
        .unwrap();
    let executor = InMemoryExecutor::new(saga);
    let started = tokio::time::Instant::now();
    let report = executor.run("s", "id", &json!({})).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(15),
        "10 s timeout + 5 s backoff"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(report.output["steps"]["p"], 2);
}

#[tokio::test(start_paused = true)]
async fn terminal_errors_are_not_retried_and_compensate_in_reverse() {
    let (c, c_calls) = scripted(|_| Behaviour::Fail(StepError::terminal("Declined", "no")));
    let saga = Saga::builder("s")
        .compensable("a", ok())
        .compensable("b", ok())
        .pivot("c", c)
        .retry(RetryPolicy::new(5))
        .build()
        .unwrap();
    let report = InMemoryExecutor::new(saga)
        .run("s", "id", &json!({}))
        .await
        .unwrap();
    assert_eq!(c_calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        report.trace.applied(),
        [
            ("a", Action::Execute),
            ("b", Action::Execute),
            ("b", Action::Compensate),
            ("a", Action::Compensate)
        ]
    );
    assert_eq!(
        report.output["error"],
        json!({"Error": "Saga.Terminal", "Cause": "Declined: no"})
    );
}

#[tokio::test(start_paused = true)]
async fn inputs_that_cannot_start_a_saga_are_refused() {
    let executor = InMemoryExecutor::new(Saga::builder("s").pivot("p", ok()).build().unwrap());
    let err = executor.run("s", "id", &json!([1, 2])).await.unwrap_err();
    assert!(err.to_string().contains("must be a JSON object"), "{err}");
    let err = executor
        .run("s", "id", &json!({"steps": {}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`steps` is reserved"), "{err}");
    let err = executor.run("nope", "id", &json!({})).await.unwrap_err();
    assert!(matches!(err, ExecutorError::UnknownSaga { .. }), "{err}");
    executor.run("s", "id", &json!({})).await.unwrap();
    let err = executor.run("s", "id", &json!({})).await.unwrap_err();
    assert!(matches!(err, ExecutorError::AlreadyStarted { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn resuming_a_finished_saga_reports_it_and_runs_nothing() {
    let (step, calls) = scripted(|_| Behaviour::Succeed);
    let executor = InMemoryExecutor::new(Saga::builder("s").pivot("p", step).build().unwrap());
    let first = executor.run("s", "id", &json!({"x": 1})).await.unwrap();
    let again = executor.resume("id").await.unwrap();
    assert_eq!(first, again);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(matches!(
        executor.resume("other").await,
        Err(ExecutorError::NotFound { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_log_from_another_version_is_not_resumed() {
    let log = SagaLog::new();
    let started = SagaEvent::SagaStarted {
        saga: "s".into(),
        version: 7,
        input: json!({}),
    };
    log.append("id", started).unwrap();
    let saga = Saga::builder("s")
        .version(8)
        .pivot("p", ok())
        .build()
        .unwrap();
    let executor = InMemoryExecutor::builder().saga(saga).log(log).build();
    let err = executor.resume("id").await.unwrap_err();
    assert!(err.to_string().contains("version 7"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_observer_sees_every_event_in_order() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let executor = InMemoryExecutor::builder()
        .saga(Saga::builder("s").pivot("p", ok()).build().unwrap())
        .observer(move |_, position, event| sink.lock().unwrap().push((position, event.name())))
        .build();
    executor.run("s", "id", &json!({})).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (0, "SagaStarted"),
            (1, "StepStarted"),
            (2, "StepSucceeded"),
            (3, "SagaCompleted")
        ]
    );
}

#[test]
fn builder_refuses_bad_declarations_naming_the_step() {
    let err = Saga::builder("s")
        .pivot("a", ok())
        .compensable("b", ok())
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("compensable step `b` comes after pivot step `a`"),
        "{err}"
    );
    let err = Saga::builder("s")
        .pivot("a", ok())
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("whole seconds"), "{err}");
    let policy = RetryPolicy::new(1).backoff_rate(0.5);
    let err = Saga::builder("s")
        .pivot("a", ok())
        .retry(policy)
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("BackoffRate 0.5 is below 1.0"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn payloads_over_256_kib_are_refused_before_they_are_carried() {
    let big = "x".repeat(300 * 1024);
    let executor = InMemoryExecutor::new(Saga::builder("s").pivot("p", ok()).build().unwrap());
    let err = executor
        .run("s", "id", &json!({ "blob": big }))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("262144"), "{err}");

    struct Huge;
    impl Step for Huge {
        type Input = Value;
        type Output = String;
        async fn execute(&self, _: &StepContext<'_>, _: Value) -> Result<String, StepError> {
            Ok("y".repeat(300 * 1024))
        }
    }
    let saga = Saga::builder("s")
        .compensable("a", ok())
        .pivot("huge", Huge)
        .build()
        .unwrap();
    let report = InMemoryExecutor::new(saga)
        .run("s", "id", &json!({}))
        .await
        .unwrap();
    let Outcome::Compensated { failed_step, error } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(
        (failed_step.as_str(), error.code.as_str()),
        ("huge", "DataLimitExceeded")
    );
    assert_eq!(
        report.trace.applied().last(),
        Some(&("a", Action::Compensate))
    );
}

/// A late execute (held back until the saga ended) never runs after its step's compensation,
/// and a late duplicate of an attempt that was retried to success runs nothing either.
#[tokio::test(start_paused = true)]
async fn a_late_execute_runs_nothing_after_the_compensation_or_the_success() {
    use saga_core::testing::FaultPlan;
    let (late_reserve, reserve_runs) = scripted(|_| Behaviour::Succeed);
    let (late_charge, charge_runs) = scripted(|_| Behaviour::Succeed);
    let saga = Saga::builder("late")
        .compensable("reserve", late_reserve)
        .retry(RetryPolicy::new(1))
        .timeout(Duration::from_secs(5))
        .compensable("charge", late_charge)
        .retry(RetryPolicy::new(1))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // `reserve`: its first attempt is late, the retry succeeds. `charge`: every attempt is
    // late, so it fails for good and both steps are compensated.
    let plan =
        FaultPlan::new()
            .late("reserve", Action::Execute, 1)
            .late("charge", Action::Execute, 2);
    let executor = InMemoryExecutor::builder().saga(saga).faults(plan).build();
    let report = executor.run("late", "s-1", &json!({})).await.unwrap();
    assert!(
        matches!(&report.outcome, Outcome::Compensated { failed_step, .. } if failed_step == "charge"),
        "{:?}",
        report.outcome
    );
    assert_eq!(
        reserve_runs.load(Ordering::SeqCst),
        1,
        "the late copy found the answer"
    );
    assert_eq!(
        charge_runs.load(Ordering::SeqCst),
        0,
        "the late copies of `charge` came after its compensation"
    );
}

/// A late execute of a step that was never compensated (a retriable step that gave up) is
/// delivered, and runs: only a compensation locks a step.
#[tokio::test(start_paused = true)]
async fn a_late_execute_of_a_step_never_compensated_runs() {
    use saga_core::testing::FaultPlan;
    let (late_ship, ship_runs) = scripted(|_| Behaviour::Succeed);
    let saga = Saga::builder("late")
        .pivot("pay", ok())
        .retriable("ship", late_ship)
        .retry(RetryPolicy::new(1))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let plan = FaultPlan::new().late("ship", Action::Execute, 2);
    let executor = InMemoryExecutor::builder().saga(saga).faults(plan).build();
    let report = executor.run("late", "s-1", &json!({})).await.unwrap();
    assert!(
        matches!(&report.outcome, Outcome::CompensationFailed { step, .. } if step == "ship"),
        "{:?}",
        report.outcome
    );
    assert_eq!(
        ship_runs.load(Ordering::SeqCst),
        1,
        "the first late copy ran, the second found its answer"
    );
}

/// A command that is never answered is never heartbeaten either: it fails at the step's
/// heartbeat, as on Step Functions, and says so; a handler that hangs (its participant
/// heartbeats while it runs) fails at the timeout.
#[tokio::test(start_paused = true)]
async fn an_unanswered_command_fails_at_the_heartbeat_and_a_hanging_handler_at_the_timeout() {
    use saga_core::testing::FaultPlan;
    let (hanging, _) = scripted(|attempt| match attempt {
        1 => Behaviour::Hang(Duration::from_secs(3600)),
        _ => Behaviour::Succeed,
    });
    let saga = Saga::builder("s")
        .pivot("lost", ok())
        .timeout(Duration::from_secs(10))
        .heartbeat(Duration::from_secs(4))
        .retry(RetryPolicy::new(1).interval_seconds(1))
        .retriable("hangs", hanging)
        .timeout(Duration::from_secs(10))
        .heartbeat(Duration::from_secs(4))
        .retry(RetryPolicy::new(1).interval_seconds(1))
        .build()
        .unwrap();
    let plan = FaultPlan::new().time_out("lost", Action::Execute, 1);
    let executor = InMemoryExecutor::builder().saga(saga).faults(plan).build();
    let started = tokio::time::Instant::now();
    let report = executor.run("s", "id", &json!({})).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    let failures: Vec<(&str, &str, &str)> = report
        .trace
        .0
        .iter()
        .filter_map(|i| match &i.result {
            InvocationResult::Failed(f) => {
                Some((i.step.as_str(), f.code.as_str(), f.message.as_str()))
            }
            InvocationResult::Succeeded | InvocationResult::Skipped => None,
        })
        .collect();
    assert_eq!(
        failures,
        [
            ("lost", "HeartbeatTimeout", "no heartbeat within 4s"),
            ("hangs", "Timeout", "no answer within 10s")
        ]
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(4 + 1 + 10 + 1),
        "the heartbeat, a retry, the timeout, a retry"
    );
}
