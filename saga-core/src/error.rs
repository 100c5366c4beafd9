//! Errors a step returns, and the failures the executor records.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::protocol;

/// Whether a step error is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A transient fault (a network blip, a throttled dependency): retried per the step's policy.
    Retryable,
    /// A business rejection (`PaymentDeclined`, `OutOfStock`): never retried, starts compensation.
    Terminal,
}

/// The error a step handler returns: retryable or terminal, with a code and a message.
///
/// Retryable errors are retried according to the step's [`RetryPolicy`](crate::RetryPolicy); a
/// terminal error (or a retryable one that exhausted its policy) ends the forward path of the saga
/// and starts compensation. The `code` is a short machine-readable name such as
/// `PaymentDeclined`; the message is for people.
///
/// Handlers usually build one with [`StepError::terminal`] / [`StepError::retryable`], or convert
/// any error with the [`ResultExt`] methods:
///
/// ```
/// use saga_core::{ResultExt, StepError};
///
/// fn charge(balance: u64, amount: u64) -> Result<u64, StepError> {
///     if amount > balance {
///         return Err(StepError::terminal("PaymentDeclined", "insufficient funds"));
///     }
///     let receipt: u64 = "42".parse().terminal_as("BadReceipt")?;
///     Ok(receipt)
/// }
/// assert!(charge(1, 2).unwrap_err().is_terminal());
/// assert_eq!(charge(2, 1).unwrap(), 42);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    kind: ErrorKind,
    code: String,
    message: String,
}

impl StepError {
    /// Code used for retryable errors that were not given one.
    pub const RETRYABLE: &'static str = "Retryable";
    /// Code used for terminal errors that were not given one.
    pub const TERMINAL: &'static str = "Terminal";

    /// A terminal error (business rejection) with a code such as `PaymentDeclined`.
    pub fn terminal(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Terminal,
            code: code.into(),
            message: message.into(),
        }
    }

    /// A retryable (transient) error.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Retryable,
            code: Self::RETRYABLE.to_owned(),
            message: message.into(),
        }
    }

    /// A retryable error with a code of its own, such as `Throttled`.
    pub fn retryable_with_code(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Retryable,
            code: code.into(),
            message: message.into(),
        }
    }

    /// Retryable or terminal.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The machine-readable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `true` for a terminal error.
    pub fn is_terminal(&self) -> bool {
        self.kind == ErrorKind::Terminal
    }

    /// `true` for a retryable error.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Retryable => "retryable",
            ErrorKind::Terminal => "terminal",
        };
        write!(f, "{kind} error {}: {}", self.code, self.message)
    }
}

impl std::error::Error for StepError {}

/// Malformed data is a bug or a bad request, retrying cannot fix it: terminal, code `InvalidData`.
impl From<serde_json::Error> for StepError {
    fn from(err: serde_json::Error) -> Self {
        Self::terminal("InvalidData", err.to_string())
    }
}

/// I/O failures are usually transient: retryable, code `Io`.
impl From<std::io::Error> for StepError {
    fn from(err: std::io::Error) -> Self {
        Self::retryable_with_code("Io", err.to_string())
    }
}

/// A deadline inside the handler ran out: retryable, code `Timeout`.
impl From<tokio::time::error::Elapsed> for StepError {
    fn from(err: tokio::time::error::Elapsed) -> Self {
        Self::retryable_with_code("Timeout", err.to_string())
    }
}

/// Converts any `Result` into one with a [`StepError`], choosing the kind at the call site.
///
/// ```
/// use saga_core::{ResultExt, StepError};
///
/// fn parse(s: &str) -> Result<u32, StepError> {
///     s.parse::<u32>().terminal()
/// }
/// assert_eq!(parse("7"), Ok(7));
/// assert!(parse("x").unwrap_err().is_terminal());
/// ```
pub trait ResultExt<T> {
    /// A failure is terminal, with the generic code `Terminal`.
    fn terminal(self) -> Result<T, StepError>;
    /// A failure is terminal, with the given code.
    fn terminal_as(self, code: &str) -> Result<T, StepError>;
    /// A failure is retryable.
    fn retryable(self) -> Result<T, StepError>;
}

impl<T, E: fmt::Display> ResultExt<T> for Result<T, E> {
    fn terminal(self) -> Result<T, StepError> {
        self.map_err(|e| StepError::terminal(StepError::TERMINAL, e.to_string()))
    }

    fn terminal_as(self, code: &str) -> Result<T, StepError> {
        self.map_err(|e| StepError::terminal(code, e.to_string()))
    }

    fn retryable(self) -> Result<T, StepError> {
        self.map_err(|e| StepError::retryable(e.to_string()))
    }
}

/// How an invocation failed, as the executor (or Step Functions) saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The participant answered with a retryable error (or its handler panicked).
    Retryable,
    /// The participant answered with a terminal error.
    Terminal,
    /// No answer within the step's timeout.
    Timeout,
}

impl FailureKind {
    /// The Amazon States Language error name for this failure: `Saga.Retryable`,
    /// `Saga.Terminal` or `States.Timeout`.
    pub fn asl_error(self) -> &'static str {
        match self {
            FailureKind::Retryable => protocol::ERROR_RETRYABLE,
            FailureKind::Terminal => protocol::ERROR_TERMINAL,
            FailureKind::Timeout => protocol::ERROR_TIMEOUT,
        }
    }

    /// Whether the step's retry policy applies (retryable errors and timeouts, as in ASL).
    pub fn is_retried(self) -> bool {
        matches!(self, FailureKind::Retryable | FailureKind::Timeout)
    }
}

/// A failed invocation as recorded in the saga log and handed to compensations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    /// Retryable, terminal or timeout.
    pub kind: FailureKind,
    /// The error code (`PaymentDeclined`, `Timeout`, `Panic`, ...).
    pub code: String,
    /// The message.
    pub message: String,
}

impl StepFailure {
    /// The failure for an invocation that got no answer within `seconds`.
    pub fn timeout(seconds: u32) -> Self {
        Self {
            kind: FailureKind::Timeout,
            code: "Timeout".to_owned(),
            message: format!("no answer within {seconds}s"),
        }
    }

    /// The failure for a task without a heartbeat within `seconds` (`HeartbeatSeconds`): its
    /// command was lost, waited too long in the queue, or its answer was lost. Retried like a
    /// timeout.
    pub fn heartbeat_timeout(seconds: u32) -> Self {
        Self {
            kind: FailureKind::Timeout,
            code: "HeartbeatTimeout".to_owned(),
            message: format!("no heartbeat within {seconds}s"),
        }
    }

    /// The failure for a handler that panicked: retryable, since a panic is a bug in one
    /// invocation, not a business decision.
    pub fn panicked(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Retryable,
            code: "Panic".to_owned(),
            message: message.into(),
        }
    }

    /// The error name and the cause a participant answers this failure with
    /// (`SendTaskFailure`): `Saga.Terminal`, `Saga.Retryable`, `Saga.InvalidInput` or
    /// `Saga.ExecuteInProgress`, and `code: message`. A
    /// participant cannot answer `States.Timeout` (Step Functions reserves the `States.`
    /// names), so a handler that ran out of time answers `Saga.Retryable`, which the state
    /// machine retries as it would a timeout.
    pub fn to_task_failure(&self) -> (&'static str, String) {
        let error = match self.kind {
            FailureKind::Timeout => protocol::ERROR_RETRYABLE,
            _ => self.asl_error(),
        };
        (error, self.cause())
    }

    /// The ASL error name of this failure: the kind's ([`FailureKind::asl_error`]), but
    /// `Saga.InvalidInput` for a step that could not read its input and
    /// `Saga.ExecuteInProgress` for a compensation that met its step's execute still running,
    /// since the state machine treats those two apart.
    fn asl_error(&self) -> &'static str {
        match self.kind {
            FailureKind::Terminal if self.applied_nothing() => protocol::ERROR_INVALID_INPUT,
            FailureKind::Retryable if self.met_execute_in_progress() => {
                protocol::ERROR_EXECUTE_IN_PROGRESS
            }
            kind => kind.asl_error(),
        }
    }

    /// Whether a compensation failed because its step's execute was still running elsewhere
    /// (the code [`EXECUTE_IN_PROGRESS`](crate::invocation::codes::EXECUTE_IN_PROGRESS)): it is
    /// retried by [`StepDefinition::execute_wait`](crate::StepDefinition::execute_wait), on
    /// both engines, until the execute's lease has ended.
    pub fn met_execute_in_progress(&self) -> bool {
        self.kind == FailureKind::Retryable
            && self.code == crate::invocation::codes::EXECUTE_IN_PROGRESS
    }

    /// This failure with its cause (`code: message`) cut to at most
    /// [`MAX_CAUSE_BYTES`](crate::analysis::payload::MAX_CAUSE_BYTES) of JSON, as the one
    /// invocation path answers it on both engines: `SendTaskFailure` refuses a cause over
    /// 32,768 characters, and a long one could push the document a `Catch` adds it to past
    /// Step Functions' payload limit. A code keeps at most 256 bytes; a cut message ends in
    /// `[cut]`.
    pub fn bounded(mut self) -> Self {
        use crate::analysis::payload::{MAX_CAUSE_BYTES, cut_escaped, payload_size};
        const CODE_BYTES: usize = 256;
        const CUT: &str = " [cut]";
        if payload_size(&self.code) + payload_size(&self.message) <= MAX_CAUSE_BYTES {
            return self;
        }
        cut_escaped(&mut self.code, CODE_BYTES);
        // The cause's JSON: its quotes, the code, `: `, the message.
        let room = MAX_CAUSE_BYTES - 2 - (payload_size(&self.code) - 2) - 2 - CUT.len();
        cut_escaped(&mut self.message, room);
        self.message.push_str(CUT);
        self
    }

    /// A step that could not read its input (code [`protocol::INVALID_INPUT_CODE`]).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Terminal,
            code: protocol::INVALID_INPUT_CODE.to_owned(),
            message: message.into(),
        }
    }

    /// Whether the failed invocation applied nothing: its step could not read its input (a
    /// terminal failure with the code [`protocol::INVALID_INPUT_CODE`]). Such a step is not
    /// compensated.
    pub fn applied_nothing(&self) -> bool {
        self.kind == FailureKind::Terminal && self.code == protocol::INVALID_INPUT_CODE
    }

    /// The JSON a Step Functions `Catch` puts under `$.error`: `{"Error": .., "Cause": ..}`,
    /// with the kind's ASL error ([`FailureKind::asl_error`]) and `code: message`.
    pub fn to_asl_error(&self) -> serde_json::Value {
        serde_json::json!({ "Error": self.asl_error(), "Cause": self.cause() })
    }

    /// `code: message`, the cause of the failure on the wire.
    fn cause(&self) -> String {
        format!("{}: {}", self.code, self.message)
    }

    /// The one decoding of an error name and a cause, wherever they come from: a task's
    /// failure in an execution's history, or what a `Catch` put under `$.error`. The kind is
    /// what the generated state machine did with the error: `Saga.Retryable` (and
    /// `Saga.ExecuteInProgress`) is retried, `States.Timeout` (and `States.HeartbeatTimeout`)
    /// is a timeout, retried too, and every other error (`Saga.Terminal`, `States.Runtime`, `States.DataLimitExceeded`, ...) is
    /// terminal, since no `Retry` matches it. A cause `code: message` (a code without spaces)
    /// gives the code and the message; any other cause is the message, with the error name as
    /// the code.
    ///
    /// ```
    /// use saga_core::{FailureKind, StepFailure};
    ///
    /// let declined = StepFailure::from_task_failure("Saga.Terminal", "PaymentDeclined: no funds");
    /// assert_eq!((declined.kind, declined.code.as_str()), (FailureKind::Terminal, "PaymentDeclined"));
    /// let runtime = StepFailure::from_task_failure("States.Runtime", "An error occurred");
    /// assert_eq!((runtime.kind, runtime.code.as_str()), (FailureKind::Terminal, "States.Runtime"));
    /// ```
    pub fn from_task_failure(error: &str, cause: &str) -> Self {
        let kind = match error {
            protocol::ERROR_RETRYABLE | protocol::ERROR_EXECUTE_IN_PROGRESS => {
                FailureKind::Retryable
            }
            protocol::ERROR_TIMEOUT | protocol::ERROR_HEARTBEAT_TIMEOUT => FailureKind::Timeout,
            _ => FailureKind::Terminal,
        };
        let (code, message) = match cause.split_once(": ") {
            Some((code, message)) if !code.is_empty() && !code.contains(' ') => {
                (code.to_owned(), message.to_owned())
            }
            _ if cause.is_empty() => (error.to_owned(), "no cause given".to_owned()),
            _ => (error.to_owned(), cause.to_owned()),
        };
        Self {
            kind,
            code,
            message,
        }
    }
}

impl StepFailure {
    /// Reads back what [`to_asl_error`](Self::to_asl_error) wrote (what a Catch put under
    /// `$.error`), with [`from_task_failure`](Self::from_task_failure); `None` if `value` is
    /// not such an object.
    pub fn from_asl_error(value: &serde_json::Value) -> Option<Self> {
        let error = value.get("Error")?.as_str()?;
        let cause = value
            .get("Cause")
            .and_then(|c| c.as_str())
            .unwrap_or_default();
        Some(Self::from_task_failure(error, cause))
    }
}

impl From<StepError> for StepFailure {
    fn from(err: StepError) -> Self {
        let kind = match err.kind {
            ErrorKind::Retryable => FailureKind::Retryable,
            ErrorKind::Terminal => FailureKind::Terminal,
        };
        Self {
            kind,
            code: err.code,
            message: err.message,
        }
    }
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.asl_error(),
            self.code,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_ext_picks_the_kind() {
        let r: Result<(), &str> = Err("boom");
        assert!(r.terminal().unwrap_err().is_terminal());
        assert!(r.retryable().unwrap_err().is_retryable());
        assert_eq!(r.terminal_as("Declined").unwrap_err().code(), "Declined");
    }

    #[test]
    fn conversions_choose_sensible_kinds() {
        let json: StepError = serde_json::from_str::<u8>("x").unwrap_err().into();
        assert!(json.is_terminal());
        let io: StepError = std::io::Error::other("reset").into();
        assert!(io.is_retryable());
    }

    #[test]
    fn asl_errors_read_back() {
        let f: StepFailure = StepError::terminal("PaymentDeclined", "no: really").into();
        assert_eq!(StepFailure::from_asl_error(&f.to_asl_error()), Some(f));
        let timeout = serde_json::json!({"Error": "States.Timeout", "Cause": "no answer"});
        let read = StepFailure::from_asl_error(&timeout).unwrap();
        assert_eq!(
            (read.kind, read.code.as_str()),
            (FailureKind::Timeout, "States.Timeout")
        );
        assert_eq!(StepFailure::from_asl_error(&serde_json::json!(1)), None);
    }

    #[test]
    fn failure_maps_to_asl_names() {
        let f: StepFailure = StepError::terminal("PaymentDeclined", "no").into();
        assert_eq!(f.to_asl_error()["Error"], "Saga.Terminal");
        assert_eq!(f.to_asl_error()["Cause"], "PaymentDeclined: no");
        assert!(FailureKind::Timeout.is_retried());
        assert!(!FailureKind::Terminal.is_retried());
    }

    #[test]
    fn a_compensation_meeting_its_execute_has_its_own_error_name() {
        let waiting: StepFailure = StepError::retryable_with_code(
            crate::invocation::codes::EXECUTE_IN_PROGRESS,
            "`s/1/execute` is still running elsewhere",
        )
        .into();
        assert!(waiting.met_execute_in_progress());
        let (error, cause) = waiting.to_task_failure();
        assert_eq!(error, "Saga.ExecuteInProgress");
        assert_eq!(StepFailure::from_task_failure(error, &cause), waiting);
        assert_eq!(waiting.to_asl_error()["Error"], "Saga.ExecuteInProgress");
        // The same code from a handler that calls its failure terminal is not the lock's.
        let terminal: StepFailure =
            StepError::terminal(crate::invocation::codes::EXECUTE_IN_PROGRESS, "no").into();
        assert!(!terminal.met_execute_in_progress());
        assert_eq!(terminal.to_task_failure().0, "Saga.Terminal");
    }
}
