//! Waiting for an execution's end, and what it reports then: the one polling loop of the
//! crate, for the command line, the tests, the conformance harness and the bench alike.

use std::time::Duration;

use saga_core::SagaReport;
use tokio::time::Instant;

use super::{Progress, Status, StepFunctions};
use crate::error::AwsError;

/// How to wait for an execution: how often to look, and for how long at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    interval: Duration,
    timeout: Option<Duration>,
}

impl Default for Wait {
    /// A look every 200 ms, for as long as it takes.
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(200),
            timeout: None,
        }
    }
}

impl Wait {
    /// Looks every `interval` (each look is one DescribeExecution, or one more page of history
    /// for [`StepFunctions::watch`]).
    pub fn every(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Gives up after `timeout` with [`AwsError::StillRunning`] (the execution goes on).
    pub fn at_most(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| Instant::now() + t)
    }
}

impl StepFunctions {
    /// Waits until the execution has ended and returns its state. An execution that does not
    /// exist yet is waited for too (a trigger starts its sagas asynchronously), within the
    /// same timeout.
    pub async fn wait(
        &self,
        execution_arn: &str,
        wait: Wait,
    ) -> Result<super::ExecutionState, AwsError> {
        let deadline = wait.deadline();
        loop {
            match self.describe(execution_arn).await {
                Ok(state) if state.status != Status::Running => return Ok(state),
                Ok(_) => {}
                Err(e) if e.code() == Some("ExecutionDoesNotExist") => {}
                Err(e) => return Err(e),
            }
            pause(execution_arn, &wait, deadline).await?;
        }
    }

    /// Like [`wait`](Self::wait), with the execution's [`Progress`] handed to `seen` at every
    /// look (the command line's live view); the last progress, once it has ended.
    pub async fn watch(
        &self,
        execution_arn: &str,
        wait: Wait,
        mut seen: impl FnMut(&Progress),
    ) -> Result<Progress, AwsError> {
        let deadline = wait.deadline();
        loop {
            let progress = self.progress(execution_arn).await?;
            seen(&progress);
            if progress.state.status != Status::Running {
                return Ok(progress);
            }
            pause(execution_arn, &wait, deadline).await?;
        }
    }

    /// What an ended execution reports, in the in-memory executor's terms: its outcome, its
    /// trace and the final saga document. An error while it runs, and when it ended outside the
    /// saga's own ends (the state machine's own timeout, an operator's stop).
    pub async fn report(&self, execution_arn: &str) -> Result<SagaReport, AwsError> {
        self.progress(execution_arn).await?.report(execution_arn)
    }

    /// [`wait`](Self::wait), then [`report`](Self::report).
    pub async fn wait_for_report(
        &self,
        execution_arn: &str,
        wait: Wait,
    ) -> Result<SagaReport, AwsError> {
        self.wait(execution_arn, wait).await?;
        self.report(execution_arn).await
    }
}

impl Progress {
    /// The report of the ended execution `execution_arn` (see [`StepFunctions::report`]).
    pub fn report(self, execution_arn: &str) -> Result<SagaReport, AwsError> {
        let saga_id = execution_arn
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        let outcome = self
            .state
            .outcome(&self.trace)
            .ok_or_else(|| match self.state.status {
                Status::Running => AwsError::StillRunning {
                    execution: execution_arn.to_owned(),
                    waited: Duration::ZERO,
                },
                status => AwsError::NotASagaEnd {
                    execution: execution_arn.to_owned(),
                    status: format!("{status:?}"),
                    error: self.state.error.clone().unwrap_or_default(),
                    cause: self.state.cause.clone().unwrap_or_default(),
                },
            })?;
        // A failed saga's document is the input of the `Fail` state it ended in.
        let output = self
            .state
            .output
            .or(self.document)
            .unwrap_or(serde_json::Value::Null);
        Ok(SagaReport {
            saga_id,
            outcome,
            trace: self.trace,
            output,
        })
    }
}

/// Sleeps for the interval, or fails if that would pass the deadline.
async fn pause(
    execution_arn: &str,
    wait: &Wait,
    deadline: Option<Instant>,
) -> Result<(), AwsError> {
    if deadline.is_some_and(|d| Instant::now() + wait.interval > d) {
        return Err(AwsError::StillRunning {
            execution: execution_arn.to_owned(),
            waited: wait.timeout.unwrap_or_default(),
        });
    }
    tokio::time::sleep(wait.interval).await;
    Ok(())
}
