//! The travel saga the group tests share, its recording participants, and a crash-and-resume
//! run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use saga_core::testing::FaultPlan;
use saga_core::{Compensable, InMemoryExecutor, Saga, Step, StepContext, StepError};
use serde_json::{Value, json};

/// What the participants did, in order: `("hotel", "execute")`, `("hotel", "compensate")`,
/// and the document each execute read.
#[derive(Clone, Default)]
pub(crate) struct Ledger {
    pub(crate) entries: Arc<Mutex<Vec<(String, &'static str)>>>,
    pub(crate) seen: Arc<Mutex<HashMap<String, Value>>>,
    /// Executes that wait for this many participants to be inside their execute at once.
    pub(crate) meet: Option<Arc<tokio::sync::Barrier>>,
}

impl Ledger {
    pub(crate) fn entries(&self) -> Vec<(String, &'static str)> {
        self.entries.lock().unwrap().clone()
    }

    /// How often `step`'s effect was applied and undone.
    pub(crate) fn count(&self, step: &str) -> (usize, usize) {
        let entries = self.entries();
        let of = |what| {
            entries
                .iter()
                .filter(|e| e.0 == step && e.1 == what)
                .count()
        };
        (of("execute"), of("compensate"))
    }

    pub(crate) fn compensations(&self) -> Vec<String> {
        self.entries()
            .into_iter()
            .filter(|e| e.1 == "compensate")
            .map(|e| e.0)
            .collect()
    }
}

#[derive(Clone)]
pub(crate) struct Booking {
    pub(crate) ledger: Ledger,
}

impl Step for Booking {
    type Input = Value;
    type Output = Value;

    async fn execute(&self, cx: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        if let Some(meet) = &self.ledger.meet {
            meet.wait().await;
        }
        let step = cx.step().to_owned();
        let ledger = &self.ledger;
        ledger
            .seen
            .lock()
            .unwrap()
            .insert(step.clone(), cx.document().clone());
        ledger
            .entries
            .lock()
            .unwrap()
            .push((step.clone(), "execute"));
        // `pad.<step>` in the input: an output that many bytes larger.
        match cx.document()["pad"][&step].as_u64() {
            Some(bytes) => Ok(json!({ "booked": step, "pad": "x".repeat(bytes as usize) })),
            None => Ok(json!({ "booked": step })),
        }
    }
}

impl Compensable for Booking {
    async fn compensate(
        &self,
        cx: &StepContext<'_>,
        _: Value,
        _: Option<Value>,
    ) -> Result<(), StepError> {
        let entry = (cx.step().to_owned(), "compensate");
        self.ledger.entries.lock().unwrap().push(entry);
        Ok(())
    }
}

/// order; bookings { air: [flight, seat], hotel: [hotel], car: [car when car_wanted] };
/// charge (pivot); notify.
pub(crate) fn trip(ledger: &Ledger) -> Saga {
    let b = || Booking {
        ledger: ledger.clone(),
    };
    Saga::builder("trip")
        .compensable("order", b())
        .compensable("flight", b())
        .in_branch("bookings", "air")
        .compensable("seat", b())
        .in_branch("bookings", "air")
        .compensable("hotel", b())
        .in_group("bookings")
        .compensable("car", b())
        .in_group("bookings")
        .when("car_wanted")
        .pivot("charge", b())
        .retriable("notify", b())
        .build()
        .expect("a valid trip")
}

pub(crate) fn executor(ledger: &Ledger, faults: FaultPlan) -> InMemoryExecutor {
    InMemoryExecutor::builder()
        .saga(trip(ledger))
        .faults(faults)
        .build()
}

/// Runs saga `t` of `saga` under `faults` crashing at log position `crash`, then resumes it
/// on a new executor with the same log and store: the ledger and the resumed run's report.
pub(crate) async fn crash_and_resume(
    saga: impl Fn(&Ledger) -> Saga,
    faults: impl Fn() -> FaultPlan,
    crash: usize,
    input: &Value,
) -> (Ledger, saga_core::SagaReport) {
    let ledger = Ledger::default();
    let first = InMemoryExecutor::builder()
        .saga(saga(&ledger))
        .faults(faults().crash_at(crash))
        .build();
    let err = first.run("trip", "t", input).await.unwrap_err();
    assert!(err.to_string().contains("crashed"), "{err}");
    let again = InMemoryExecutor::builder()
        .saga(saga(&ledger))
        .log(first.log().clone())
        .store(first.store().clone())
        .faults(faults())
        .build();
    let report = again.resume("t").await.unwrap();
    (ledger, report)
}
