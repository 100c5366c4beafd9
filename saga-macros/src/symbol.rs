//! Every keyword the macro understands, in one place.

/// Step attributes on methods.
pub(crate) const COMPENSABLE: &str = "compensable";
pub(crate) const PIVOT: &str = "pivot";
pub(crate) const RETRIABLE: &str = "retriable";

/// Keys of `#[saga(...)]`.
pub(crate) const NAME: &str = "name";
pub(crate) const VERSION: &str = "version";
pub(crate) const SAGA_KEYS: &[&str] = &[NAME, VERSION];

/// Keys of the step attributes.
pub(crate) const PARTICIPANT: &str = "participant";
pub(crate) const LAMBDA: &str = "lambda";
pub(crate) const TIMEOUT: &str = "timeout";
pub(crate) const HEARTBEAT: &str = "heartbeat";
pub(crate) const RETRY: &str = "retry";
pub(crate) const COMPENSATION_RETRY: &str = "compensation_retry";
pub(crate) const COMPENSATE: &str = "compensate";
pub(crate) const COMPENSATE_ON_FAILURE: &str = "compensate_on_failure";
pub(crate) const WHEN: &str = "when";
pub(crate) const GROUP: &str = "group";
pub(crate) const BRANCH: &str = "branch";
pub(crate) const STEP_KEYS: &[&str] = &[
    NAME,
    PARTICIPANT,
    LAMBDA,
    TIMEOUT,
    HEARTBEAT,
    RETRY,
    COMPENSATION_RETRY,
    COMPENSATE,
    COMPENSATE_ON_FAILURE,
    WHEN,
    GROUP,
    BRANCH,
];
/// Keys only a compensable step may have.
pub(crate) const COMPENSATION_KEYS: &[&str] =
    &[COMPENSATE, COMPENSATION_RETRY, COMPENSATE_ON_FAILURE];

/// Keys of `retry(...)` and `compensation_retry(...)`.
pub(crate) const MAX_ATTEMPTS: &str = "max_attempts";
pub(crate) const INTERVAL: &str = "interval";
pub(crate) const BACKOFF_RATE: &str = "backoff_rate";
pub(crate) const MAX_DELAY: &str = "max_delay";
pub(crate) const JITTER: &str = "jitter";
pub(crate) const RETRY_KEYS: &[&str] = &[MAX_ATTEMPTS, INTERVAL, BACKOFF_RATE, MAX_DELAY, JITTER];
