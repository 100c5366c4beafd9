//! The saga model as data: what the `#[saga]` macro and the builder produce, what the executor
//! runs and what the ASL generator translates. No handlers here, only the declaration.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::idempotency::Action;
use crate::retry::{ASL_MAX_INTEGER, RetryPolicy};

mod condition;
mod error;
mod group;
pub mod names;

pub use condition::{Comparison, Condition, ConditionError, DocumentPath, IntoCondition, Literal};
pub use error::DefinitionError;
pub use group::{Branch, Group, GroupBranch, Stage};
use names::{check_name, check_participant, check_step_name};

/// The role a step plays in the saga (Garcia-Molina's compensable / pivot / retriable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Has a compensating action; may come only before the pivot.
    Compensable,
    /// The go/no-go step, at most one; once it succeeds the saga must complete.
    Pivot,
    /// Comes after the pivot; has no compensation and is retried until it succeeds.
    Retriable,
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepKind::Compensable => "compensable",
            StepKind::Pivot => "pivot",
            StepKind::Retriable => "retriable",
        })
    }
}

/// Who runs a step: a service listening on an SQS queue, or a Lambda function.
///
/// The name is logical (`inventory`); the queue URL or function ARN is bound at deploy time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Participant {
    /// A worker long-polling an SQS queue, answering with task tokens.
    Queue(String),
    /// A Lambda function invoked directly.
    Lambda(String),
}

impl Participant {
    /// A participant on the SQS queue named `name`.
    pub fn queue(name: impl Into<String>) -> Self {
        Participant::Queue(name.into())
    }

    /// A participant implemented as the Lambda function `name`.
    pub fn lambda(name: impl Into<String>) -> Self {
        Participant::Lambda(name.into())
    }

    /// The logical name.
    pub fn name(&self) -> &str {
        match self {
            Participant::Queue(n) | Participant::Lambda(n) => n,
        }
    }
}

/// One step of a saga as declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDefinition {
    /// The step's name, valid as a Step Functions state name.
    pub name: String,
    /// Compensable, pivot or retriable.
    pub kind: StepKind,
    /// The service that runs the step.
    pub participant: Participant,
    /// Retries of the action.
    pub retry: RetryPolicy,
    /// Retries of the compensation (compensable steps only).
    pub compensation_retry: RetryPolicy,
    /// How long one invocation may take before it counts as timed out (ASL `TimeoutSeconds`).
    pub timeout_seconds: u32,
    /// How often a long-running participant must signal life (ASL `HeartbeatSeconds`).
    pub heartbeat_seconds: u32,
    /// Whether the step's own compensation runs when the step itself failed. On by default,
    /// since a failure or timeout does not prove nothing happened.
    pub compensate_on_failure: bool,
    /// When the step runs: if the condition is false on the saga document as the step would
    /// read it, the step is skipped, forward and backward (nothing to compensate). `None`:
    /// always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// The parallel group and branch the step runs in. `None`: a stage of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupBranch>,
}

impl StepDefinition {
    /// The default `TimeoutSeconds` of a step: 5 minutes.
    pub const DEFAULT_TIMEOUT_SECONDS: u32 = 300;
    /// The default `HeartbeatSeconds` of a step: [`default_heartbeat`](Self::default_heartbeat)
    /// of the default timeout, 270 s.
    pub const DEFAULT_HEARTBEAT_SECONDS: u32 =
        Self::default_heartbeat(Self::DEFAULT_TIMEOUT_SECONDS);

    /// The heartbeat of a step with `timeout_seconds` and no heartbeat of its own: the timeout
    /// less a tenth (at least a second), e.g. 27 s of 30 s.
    ///
    /// Step Functions starts a task's heartbeat clock when it sends the command, so the
    /// heartbeat also counts the time the command waits in the queue: a short one kills the
    /// commands of a backlog before a worker reaches them (each kill a retry, adding to the
    /// backlog). A worker heartbeats every half heartbeat while a step runs, checks the token
    /// of a command that waited half a heartbeat before running it, and drops one whose task
    /// has ended. What a short heartbeat would buy, noticing a worker that died mid-step, SQS
    /// already gives: the message comes back after its visibility timeout and the idempotency
    /// store lets the next worker take over. Set a shorter `heartbeat` where a step must be
    /// retried soon after its worker dies.
    pub const fn default_heartbeat(timeout_seconds: u32) -> u32 {
        let margin = if timeout_seconds / 10 > 1 {
            timeout_seconds / 10
        } else {
            1
        };
        timeout_seconds.saturating_sub(margin)
    }

    /// A step with the defaults for its kind: ASL's default retry policy for compensable steps
    /// and the pivot, the long policy for retriable steps and for compensations.
    pub fn new(name: impl Into<String>, kind: StepKind, participant: Participant) -> Self {
        let retry = match kind {
            StepKind::Retriable => RetryPolicy::long(),
            StepKind::Compensable | StepKind::Pivot => RetryPolicy::default(),
        };
        Self {
            name: name.into(),
            kind,
            participant,
            retry,
            compensation_retry: RetryPolicy::long(),
            timeout_seconds: Self::DEFAULT_TIMEOUT_SECONDS,
            heartbeat_seconds: Self::DEFAULT_HEARTBEAT_SECONDS,
            compensate_on_failure: true,
            condition: None,
            group: None,
        }
    }

    /// Sets the timeout and the heartbeat (whole seconds). Without an explicit heartbeat, the
    /// heartbeat follows the timeout: [`default_heartbeat`](Self::default_heartbeat). The
    /// builder and the `#[saga]` macro both use this.
    pub fn set_timing(&mut self, timeout_seconds: Option<u32>, heartbeat_seconds: Option<u32>) {
        if let Some(timeout) = timeout_seconds {
            self.timeout_seconds = timeout;
        }
        self.heartbeat_seconds = match heartbeat_seconds {
            Some(heartbeat) => heartbeat,
            None => Self::default_heartbeat(self.timeout_seconds),
        };
    }

    /// Whether the step has a compensating action.
    pub fn is_compensable(&self) -> bool {
        self.kind == StepKind::Compensable
    }

    /// The retry policy for one of the step's actions.
    pub fn policy(&self, action: Action) -> &RetryPolicy {
        match action {
            Action::Execute => &self.retry,
            Action::Compensate => &self.compensation_retry,
        }
    }

    /// How the step's compensation waits for its execute when it finds that still running
    /// elsewhere (the semantic lock's `ExecuteInProgress`, in a group whose failure stopped
    /// the branch but not its worker, or after a worker died holding the lease): retries from
    /// 1 s, doubling up to a quarter of the step's timeout, until they add up to more than the
    /// timeout, the longest an execute holds its key's lease. So the compensation runs at most
    /// a quarter of the timeout after the execute has ended, whatever its own
    /// `compensation_retry`, and never gives up on an execute that is bound to end. Both
    /// engines retry it so: in the state machine it is the compensation Task's retrier for
    /// `Saga.ExecuteInProgress`, counted apart from its `compensation_retry` as ASL counts
    /// each retrier's attempts on its own. E.g. 10 retries for the default 300 s, 352 s in all.
    pub fn execute_wait(&self) -> RetryPolicy {
        let mut policy = RetryPolicy::new(0)
            .interval_seconds(1)
            .backoff_rate(2.0)
            .max_delay_seconds((self.timeout_seconds / 4).max(1));
        let lease = Duration::from_secs(self.timeout_seconds.into());
        let mut waited = Duration::ZERO;
        while waited <= lease {
            policy.max_attempts += 1;
            waited += policy.delay(policy.max_attempts);
        }
        policy
    }
}

/// A whole saga as declared: the single source of truth for both engines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaDefinition {
    /// The saga's name (becomes the state machine name).
    pub name: String,
    /// The version of the declaration, bumped when its shape changes.
    pub version: u32,
    /// The steps in forward order.
    pub steps: Vec<StepDefinition>,
}

impl SagaDefinition {
    /// The step called `name`, with its index.
    pub fn step(&self, name: &str) -> Option<(usize, &StepDefinition)> {
        self.steps.iter().enumerate().find(|(_, s)| s.name == name)
    }

    /// The index of the pivot, if there is one.
    pub fn pivot(&self) -> Option<usize> {
        self.steps.iter().position(|s| s.kind == StepKind::Pivot)
    }

    /// The compensations to run, in order, when step `failed` (an index) failed for good:
    /// the failed step itself first (if compensable and not opted out), then every earlier
    /// compensable step in reverse order.
    pub fn compensation_order(&self, failed: usize) -> impl Iterator<Item = &StepDefinition> {
        self.compensations(failed, true)
    }

    /// The compensations to run when step `failed` failed for good with `failure`: as
    /// [`compensation_order`](Self::compensation_order), without the failed step's own when
    /// the failure [applied nothing](crate::StepFailure::applied_nothing) (the step could not
    /// read its input).
    pub fn compensations_for(
        &self,
        failed: usize,
        failure: &crate::StepFailure,
    ) -> impl Iterator<Item = &StepDefinition> {
        self.compensations(failed, !failure.applied_nothing())
    }

    /// When the failed step is in a group, the whole group, in reverse declaration order: on
    /// Step Functions a `Parallel`'s `Catch` does not say which branch failed nor which steps
    /// had started, so both engines compensate every step of the group (one that never
    /// started finds nothing to undo, and its semantic lock refuses a later execute).
    fn compensations(&self, failed: usize, own: bool) -> impl Iterator<Item = &StepDefinition> {
        let failed_step = &self.steps[failed];
        let (own, earlier) = match self.group_of(failed) {
            Some(group) => (&self.steps[group.steps.clone()], group.steps.start),
            None => {
                let own = own && failed_step.is_compensable() && failed_step.compensate_on_failure;
                let own = if own {
                    std::slice::from_ref(failed_step)
                } else {
                    &[]
                };
                (own, failed)
            }
        };
        own.iter()
            .rev()
            .chain(self.steps[..earlier].iter().rev())
            .filter(|s| s.is_compensable())
    }

    /// The Step Functions state machine for this saga (see [`crate::asl::generate`]).
    pub fn state_machine(&self) -> crate::asl::StateMachine {
        crate::asl::generate(self)
    }

    /// Checks every rule; returns the first violation.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        match self.violations().into_iter().next() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Checks every rule and returns all violations, in declaration order.
    pub fn violations(&self) -> Vec<DefinitionError> {
        self.violations_by_step()
            .into_iter()
            .map(|(_, error)| error)
            .collect()
    }

    /// Every violation with the index of the step at fault (`None` when the saga as a whole
    /// is), in declaration order: what a tool needs to point at the declaration that breaks
    /// the rule (the `#[saga]` macro puts each on its token).
    pub fn violations_by_step(&self) -> Vec<(Option<usize>, DefinitionError)> {
        let mut errors = Vec::new();
        // The saga name must be valid as a state machine name.
        if let Err(reason) = check_name(&self.name) {
            errors.push((
                None,
                DefinitionError::InvalidSagaName {
                    name: self.name.clone(),
                    reason,
                },
            ));
        }
        // A saga has at least one step.
        if self.steps.is_empty() {
            errors.push((None, DefinitionError::NoSteps));
        } else if self.steps.iter().all(|s| s.condition.is_some()) {
            // Something always runs, and its answer tells the saga's end (its events).
            errors.push((None, DefinitionError::EveryStepConditional));
        }
        let mut seen = HashSet::new();
        let mut pivot: Option<&str> = None;
        let first_pivot = self.pivot();
        let first_retriable = self
            .steps
            .iter()
            .position(|s| s.kind == StepKind::Retriable);
        for (index, step) in self.steps.iter().enumerate() {
            let name = &step.name;
            let mut push = |error| errors.push((Some(index), error));
            // Step names are identifiers: valid state names, usable in `$.steps.<name>`, and
            // free of the `.` that generated state names use.
            if let Err(reason) = check_step_name(name) {
                push(DefinitionError::InvalidStepName {
                    step: name.clone(),
                    reason,
                });
            }
            // Step names are unique.
            if !seen.insert(name.as_str()) {
                push(DefinitionError::DuplicateStep { step: name.clone() });
            }
            // At most one pivot.
            if step.kind == StepKind::Pivot {
                if let Some(first) = pivot {
                    push(DefinitionError::SecondPivot {
                        step: name.clone(),
                        first: first.to_owned(),
                    });
                }
                pivot = Some(name);
            }
            // Every step before the pivot is compensable, every step after it retriable:
            // the kinds read compensable*, pivot?, retriable*. Each step is judged by where it
            // stands against the pivot, so one misplaced step is one error: a retriable step
            // before the pivot is, not the pivot after it, nor a compensable step between
            // the two.
            let before = |i: Option<usize>| i.filter(|i| *i < index).map(|i| &self.steps[i]);
            match (step.kind, first_pivot) {
                (StepKind::Retriable, Some(pivot)) if index < pivot => {
                    push(DefinitionError::RetriableBeforePivot {
                        step: name.clone(),
                        pivot: self.steps[pivot].name.clone(),
                    });
                }
                (StepKind::Compensable, _) => {
                    let after = match first_pivot {
                        Some(_) => before(first_pivot),
                        None => before(first_retriable),
                    };
                    if let Some(prev) = after {
                        push(DefinitionError::KindOutOfOrder {
                            step: name.clone(),
                            kind: step.kind,
                            after: prev.name.clone(),
                            after_kind: prev.kind,
                        });
                    }
                }
                _ => {}
            }
            // Retry policies are within ASL's ranges.
            for action in [Action::Execute, Action::Compensate] {
                if action == Action::Compensate && !step.is_compensable() {
                    continue;
                }
                if let Err(reason) = step.policy(action).check() {
                    push(DefinitionError::InvalidRetryPolicy {
                        step: name.clone(),
                        action,
                        reason,
                    });
                }
            }
            // TimeoutSeconds is a positive ASL integer, and HeartbeatSeconds positive and
            // below it (judged only against a valid timeout: one wrong value, one error).
            if step.timeout_seconds == 0 || step.timeout_seconds > ASL_MAX_INTEGER {
                push(DefinitionError::InvalidTimeout {
                    step: name.clone(),
                    seconds: step.timeout_seconds,
                });
            } else if step.heartbeat_seconds == 0 || step.heartbeat_seconds >= step.timeout_seconds
            {
                push(DefinitionError::InvalidHeartbeat {
                    step: name.clone(),
                    heartbeat: step.heartbeat_seconds,
                    timeout: step.timeout_seconds,
                });
            }
            // A condition reads the input and the outputs of earlier steps, never `error` (set
            // only once a step has failed for good) and nests within the limit.
            if let Some(condition) = &step.condition {
                // A read of the step's own group is `ConditionReadsOwnGroup`'s.
                let group = step.group.as_ref().map(|g| &g.group);
                let earlier = |name: &str| {
                    self.step(name).is_some_and(|(i, other)| {
                        i < index
                            || (group.is_some() && other.group.as_ref().map(|g| &g.group) == group)
                    })
                };
                for path in condition.paths() {
                    let reads = path.to_string();
                    if path.segments()[0] == crate::protocol::DOCUMENT_ERROR {
                        push(DefinitionError::ConditionReadsError {
                            step: name.clone(),
                            reads,
                        });
                    } else if path.segments()[0] == crate::protocol::DOCUMENT_STEPS
                        && !path.step().is_some_and(earlier)
                    {
                        push(DefinitionError::ConditionReadsLaterStep {
                            step: name.clone(),
                            reads,
                        });
                    }
                }
                if let Err(reason) = condition.check_depth() {
                    push(DefinitionError::InvalidCondition {
                        step: name.clone(),
                        reason,
                    });
                }
            }
            // The participant's name is a valid queue or function name.
            if let Err(reason) = check_participant(&step.participant) {
                push(DefinitionError::InvalidParticipant {
                    step: name.clone(),
                    reason,
                });
            }
        }
        // One error per mistake: a step out of the kinds' order does not also mix its group's
        // kinds, and a second step of one name does not also split its branch.
        let has = |errors: &[(Option<usize>, DefinitionError)],
                   at: usize,
                   f: fn(&DefinitionError) -> bool| {
            errors.iter().any(|(i, e)| *i == Some(at) && f(e))
        };
        let linear = errors.clone();
        errors.extend(self.group_violations().into_iter().filter(|(at, error)| {
            let Some(at) = *at else { return true };
            match error {
                DefinitionError::GroupMixesKinds { .. } => !has(&linear, at, |e| {
                    matches!(
                        e,
                        DefinitionError::KindOutOfOrder { .. }
                            | DefinitionError::RetriableBeforePivot { .. }
                    )
                }),
                DefinitionError::BranchNotContiguous { .. } => !has(&linear, at, |e| {
                    matches!(e, DefinitionError::DuplicateStep { .. })
                }),
                _ => true,
            }
        }));
        // In declaration order: the saga's own errors first, then by step.
        errors.sort_by_key(|(index, _)| *index);
        errors
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod group_tests;
