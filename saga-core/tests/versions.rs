//! Several versions of a saga in one executor, as a worker has them on AWS: new sagas start on
//! the newest, and a saga written by an older version resumes (or is recovered) on that version,
//! so it finishes with the steps it started with.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use saga_core::{
    Compensable, ExecutorError, InMemoryExecutor, Outcome, Saga, Step, StepContext, StepError,
};
use serde_json::{Value, json};

/// What the handlers of every version applied: "v<version> <saga id> <step> <action>".
type Ledger = Arc<Mutex<Vec<String>>>;

/// A step of version `version`; its compensation refuses while `broken` is set.
#[derive(Clone)]
struct Effect {
    version: u32,
    ledger: Ledger,
    broken: Arc<AtomicBool>,
}

impl Effect {
    fn apply(&self, cx: &StepContext<'_>) {
        let effect = format!(
            "v{} {} {} {}",
            self.version,
            cx.saga_id(),
            cx.step(),
            cx.action()
        );
        self.ledger.lock().unwrap().push(effect);
    }
}

impl Step for Effect {
    type Input = Value;
    type Output = Value;

    async fn execute(&self, cx: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        self.apply(cx);
        Ok(json!("done"))
    }
}

impl Compensable for Effect {
    async fn compensate(
        &self,
        cx: &StepContext<'_>,
        _: Value,
        _: Option<Value>,
    ) -> Result<(), StepError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StepError::terminal("Closed", "the warehouse is closed"));
        }
        self.apply(cx);
        Ok(())
    }
}

/// The pivot, which declines sagas whose input says so.
struct Ship;

impl Step for Ship {
    type Input = Value;
    type Output = Value;

    async fn execute(&self, _: &StepContext<'_>, input: Value) -> Result<Value, StepError> {
        if input["decline"] == true {
            return Err(StepError::terminal("Declined", "no carrier"));
        }
        Ok(json!("shipped"))
    }
}

/// Version 1 reserves, then ships; version 2 labels the parcel in between.
fn parcel(version: u32, ledger: &Ledger, broken: &Arc<AtomicBool>) -> Saga {
    let effect = Effect {
        version,
        ledger: ledger.clone(),
        broken: broken.clone(),
    };
    let builder = Saga::builder("parcel")
        .version(version)
        .compensable("reserve", effect.clone());
    let builder = if version >= 2 {
        builder.compensable("label", effect)
    } else {
        builder
    };
    builder.pivot("ship", Ship).build().unwrap()
}

fn steps(report: &saga_core::SagaReport) -> Vec<String> {
    report.trace.0.iter().map(|i| i.step.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_saga_finishes_on_its_version_while_new_ones_start_on_the_newest() {
    let ledger = Ledger::default();
    let broken = Arc::new(AtomicBool::new(true));
    let first = InMemoryExecutor::new(parcel(1, &ledger, &broken));
    let stuck = first
        .run("parcel", "old", &json!({ "decline": true }))
        .await
        .unwrap();
    assert!(
        matches!(stuck.outcome, Outcome::CompensationFailed { .. }),
        "{stuck:?}"
    );

    // Version 2 deploys next to version 1, sharing the log and the store.
    let both = InMemoryExecutor::builder()
        .saga(parcel(2, &ledger, &broken))
        .saga(parcel(1, &ledger, &broken))
        .log(first.log().clone())
        .store(first.store().clone())
        .build();
    let new = both.run("parcel", "new", &json!({})).await.unwrap();
    assert_eq!(new.outcome, Outcome::Completed);
    assert_eq!(steps(&new), ["reserve", "label", "ship"]);

    broken.store(false, Ordering::SeqCst);
    let recovered = both.recover("old").await.unwrap();
    assert!(
        matches!(&recovered.outcome, Outcome::Compensated { failed_step, .. } if failed_step == "ship"),
        "{recovered:?}"
    );
    assert_eq!(
        *ledger.lock().unwrap(),
        [
            "v1 old reserve execute",
            "v2 new reserve execute",
            "v2 new label execute",
            "v1 old reserve compensate",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_saga_of_a_version_the_executor_lacks_is_refused_with_the_versions_it_has() {
    let ledger = Ledger::default();
    let broken = Arc::new(AtomicBool::new(true));
    let first = InMemoryExecutor::new(parcel(1, &ledger, &broken));
    first
        .run("parcel", "old", &json!({ "decline": true }))
        .await
        .unwrap();
    let newer = InMemoryExecutor::builder()
        .saga(parcel(2, &ledger, &broken))
        .saga(parcel(3, &ledger, &broken))
        .log(first.log().clone())
        .store(first.store().clone())
        .build();
    let refused = newer.recover("old").await.unwrap_err();
    let ExecutorError::DefinitionMismatch { saga_id, reason } = &refused else {
        panic!("{refused}");
    };
    assert_eq!(saga_id, "old");
    assert_eq!(
        reason,
        "the log was written by version 1, this executor has version 2, 3"
    );
    assert_eq!(ledger.lock().unwrap().len(), 1, "nothing ran");
}
