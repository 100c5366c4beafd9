use saga::{saga, JitterStrategy, Participant, StepContext, StepError, StepKind};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Order {
    id: String,
}

#[derive(Serialize, Deserialize)]
struct Hold {
    id: String,
}

/// Holds clients; the saga's steps borrow it.
struct Travel {
    prefix: String,
}

#[saga(name = "travel-booking", version = 3)]
impl Travel {
    #[compensable(
        name = "hold_flight",
        compensate = release_flight,
        participant = "flights",
        timeout = "2m",
        heartbeat = "30s",
        retry(max_attempts = 5, interval = "2s", backoff_rate = 1.5, max_delay = "1m", jitter = "full"),
        compensation_retry(max_attempts = 50, interval = "10s", max_delay = "1h"),
        compensate_on_failure = false
    )]
    async fn flight(&self, _cx: &StepContext<'_>, order: Order) -> Result<Hold, StepError> {
        Ok(Hold { id: format!("{}{}", self.prefix, order.id) })
    }

    async fn release_flight(&self, _cx: &StepContext<'_>, _order: Order, _hold: Option<Hold>) -> Result<(), StepError> {
        Ok(())
    }

    #[pivot(lambda = "charge-card", timeout = "1h30m")]
    async fn charge(&self, _cx: &StepContext<'_>, _order: Order) -> Result<(), StepError> {
        Ok(())
    }

    #[retriable(participant = "mail", retry(max_attempts = 100), when = "present(email) && steps.hold_flight.id != \"\"")]
    async fn notify(&self, _cx: &StepContext<'_>, _order: Order) -> Result<(), StepError> {
        Ok(())
    }

    /// Not a step: an ordinary method stays as it is.
    fn helper(&self) -> usize {
        self.prefix.len()
    }
}

fn main() {
    let d = Travel::definition();
    let when = d.steps[2].condition.as_ref().map(ToString::to_string);
    assert_eq!(when.as_deref(), Some("present(email) && steps.hold_flight.id != \"\""));
    assert!(d.steps[0].condition.is_none());
    assert_eq!((d.name.as_str(), d.version), ("travel-booking", 3));
    let flight = &d.steps[0];
    assert_eq!(flight.name, "hold_flight");
    assert_eq!(flight.kind, StepKind::Compensable);
    assert_eq!(flight.participant, Participant::queue("flights"));
    assert_eq!((flight.timeout_seconds, flight.heartbeat_seconds), (120, 30));
    assert_eq!(flight.retry.max_attempts, 5);
    assert_eq!(flight.retry.interval_seconds, 2);
    assert_eq!(flight.retry.backoff_rate, 1.5);
    assert_eq!(flight.retry.max_delay_seconds, Some(60));
    assert_eq!(flight.retry.jitter, JitterStrategy::Full);
    assert_eq!(flight.compensation_retry.max_attempts, 50);
    assert_eq!(flight.compensation_retry.max_delay_seconds, Some(3600));
    assert!(!flight.compensate_on_failure);
    assert_eq!(d.steps[1].participant, Participant::lambda("charge-card"));
    assert_eq!(d.steps[1].timeout_seconds, 5400);
    assert_eq!(d.steps[2].kind, StepKind::Retriable);
    let travel = Travel { prefix: "t-".into() };
    assert_eq!(travel.helper(), 2);
    let _saga = travel.into_saga();
}
