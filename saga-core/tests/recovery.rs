//! Recovering a stuck saga in memory: the action that gave up runs again once the operator has
//! fixed its cause, the saga goes on from there, and nothing that succeeded runs twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use saga_core::{
    Action, Compensable, ExecutorError, InMemoryExecutor, Outcome, RetryPolicy, Saga, SagaEvent,
    Step, StepContext, StepError,
};
use serde_json::{Value, json};

/// Counts what it applies; its compensation (or, for a retriable step, its action) fails
/// terminally while `broken` is set: the bug the operator fixes.
#[derive(Clone, Default)]
struct Effect {
    executed: Arc<AtomicU32>,
    compensated: Arc<AtomicU32>,
    broken: Arc<AtomicBool>,
    fail_execute: bool,
}

impl Effect {
    fn broken(self) -> Self {
        self.broken.store(true, Ordering::SeqCst);
        self
    }

    fn fails_execute(mut self) -> Self {
        self.fail_execute = true;
        self
    }

    fn fix(&self) {
        self.broken.store(false, Ordering::SeqCst);
    }

    fn refuse(&self) -> Result<(), StepError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StepError::terminal(
                "LedgerClosed",
                "the ledger refuses writes",
            ));
        }
        Ok(())
    }

    fn counts(&self) -> (u32, u32) {
        (
            self.executed.load(Ordering::SeqCst),
            self.compensated.load(Ordering::SeqCst),
        )
    }
}

impl Step for Effect {
    type Input = Value;
    type Output = Value;

    async fn execute(&self, _: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        if self.fail_execute {
            self.refuse()?;
        }
        self.executed.fetch_add(1, Ordering::SeqCst);
        Ok(json!("done"))
    }
}

impl Compensable for Effect {
    async fn compensate(
        &self,
        _: &StepContext<'_>,
        _: Value,
        _: Option<Value>,
    ) -> Result<(), StepError> {
        self.refuse()?;
        self.compensated.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Decline;

impl Step for Decline {
    type Input = Value;
    type Output = Value;

    async fn execute(&self, _: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        Err(StepError::terminal("Declined", "card declined"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_stuck_compensation_runs_again_after_the_fix_and_the_saga_ends_compensated() {
    let (reserve, refund) = (Effect::default(), Effect::default().broken());
    let saga = Saga::builder("order")
        .compensable("reserve", reserve.clone())
        .compensable("refund", refund.clone())
        .compensation_retry(RetryPolicy::new(2))
        .pivot("charge", Decline)
        .build()
        .unwrap();
    let executor = InMemoryExecutor::new(saga);

    let stuck = executor.run("order", "o-1", &json!({})).await.unwrap();
    assert!(
        matches!(&stuck.outcome, Outcome::CompensationFailed { step, action: Action::Compensate, .. } if step == "refund"),
        "{:?}",
        stuck.outcome
    );
    assert_eq!(
        reserve.counts(),
        (1, 0),
        "reserve waits behind the stuck refund"
    );

    // Recovering before the fix gives up again, and applies nothing.
    let again = executor.recover("o-1").await.unwrap();
    assert!(matches!(again.outcome, Outcome::CompensationFailed { .. }));
    assert_eq!(refund.counts(), (1, 0));

    refund.fix();
    let report = executor.recover("o-1").await.unwrap();
    assert!(
        matches!(&report.outcome, Outcome::Compensated { failed_step, .. } if failed_step == "charge"),
        "{:?}",
        report.outcome
    );
    assert_eq!(refund.counts(), (1, 1), "the refund is compensated once");
    assert_eq!(
        reserve.counts(),
        (1, 1),
        "the chain goes on: reserve is compensated once"
    );

    // The trace starts each recovered action again at attempt 1.
    let refunds: Vec<u32> = report
        .trace
        .0
        .iter()
        .filter(|i| i.step == "refund" && i.action == Action::Compensate)
        .map(|i| i.attempt)
        .collect();
    assert_eq!(refunds, vec![1, 1, 1]);
    let recovered = executor
        .log()
        .records("o-1")
        .unwrap()
        .iter()
        .filter(|r| matches!(r.event, SagaEvent::SagaRecovered { .. }))
        .count();
    assert_eq!(recovered, 2);

    // A saga that is not stuck is refused, and nothing runs.
    let err = executor.recover("o-1").await.unwrap_err();
    assert!(matches!(err, ExecutorError::NotStuck { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("only a saga that needs an operator"),
        "{err}"
    );
    assert!(matches!(
        executor.recover("nobody").await,
        Err(ExecutorError::NotFound { .. })
    ));
    assert_eq!(refund.counts(), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_retriable_step_that_gave_up_after_the_pivot_runs_again_and_the_saga_completes() {
    let (reserve, ship) = (
        Effect::default(),
        Effect::default().fails_execute().broken(),
    );
    let saga = Saga::builder("order")
        .compensable("reserve", reserve.clone())
        .pivot("charge", Effect::default())
        .retriable("ship", ship.clone())
        .retry(RetryPolicy::new(1))
        .build()
        .unwrap();
    let executor = InMemoryExecutor::new(saga);

    let stuck = executor.run("order", "o-2", &json!({})).await.unwrap();
    assert!(
        matches!(&stuck.outcome, Outcome::CompensationFailed { step, action: Action::Execute, .. } if step == "ship"),
        "{:?}",
        stuck.outcome
    );
    ship.fix();
    let report = executor.recover("o-2").await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(ship.counts(), (1, 0));
    assert_eq!(
        reserve.counts(),
        (1, 0),
        "nothing before the pivot runs again"
    );
    assert_eq!(report.output["steps"]["ship"], "done");
}
