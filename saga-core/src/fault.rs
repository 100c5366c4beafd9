//! Fault injection for the in-memory executor: make chosen invocations fail, time out, lose
//! their answer, be delivered twice or panic, and crash the executor at a chosen log position.
//! Public through [`crate::testing`] with the `testing` feature.

// Without the `testing` feature only the executor reads plans, never builds them.
#![cfg_attr(not(feature = "testing"), allow(dead_code, unreachable_pub))]

use std::collections::HashMap;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::error::StepError;
use crate::idempotency::Action;

/// What happens to an invocation a [`Fault`] matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultEffect {
    /// The handler answers this error without applying anything. It answers behind the
    /// idempotency store, as a handler on AWS does: an outcome already stored for the key is
    /// answered instead, and a terminal error is stored as the key's outcome.
    Fail(StepError),
    /// The command is lost: no answer, the step times out, the handler never runs.
    Timeout,
    /// The handler runs (and applies its effect) but the answer is lost: the step times out.
    LoseAnswer,
    /// The command is delivered twice; the second delivery's answer is the one used.
    Duplicate,
    /// The handler panics (inside the participant, so the panic is caught).
    Panic,
    /// The command is held back, so the step times out as for [`Timeout`](Self::Timeout), and
    /// is delivered once more after the saga has ended: a late or stray execute, which must
    /// not apply its effect after its step's compensation (the semantic lock). Its answer goes
    /// nowhere. On a compensation it is a `Timeout` (on AWS a late compensation's task has
    /// ended, and the worker checks a compensation's token before it runs it). A crashed
    /// executor forgets the commands it held.
    Late,
    /// The handler runs as usual, but only this long after its delivery claimed the key: a
    /// slow participant, still running when a sibling branch fails, whose compensation then
    /// waits for it (the semantic lock answers `ExecuteInProgress` while it runs). Counts
    /// against the step's timeout.
    Slow(std::time::Duration),
}

/// One injected fault: `effect` on the given attempts of `action` of `step`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// The step.
    pub step: String,
    /// Its action or its compensation.
    pub action: Action,
    /// The 1-based attempts affected.
    pub attempts: RangeInclusive<u32>,
    /// What happens.
    pub effect: FaultEffect,
}

/// A set of faults for one saga, keyed by step, action and attempt (never by call count), so a
/// saga that crashes and resumes meets exactly the faults it would have met without the crash.
///
/// ```
/// # #[cfg(feature = "testing")] {
/// use saga_core::{Action, StepError};
/// use saga_core::testing::FaultPlan;
///
/// let plan = FaultPlan::new()
///     .fail("charge_payment", Action::Execute, StepError::retryable("throttled"), 2)
///     .lose_answer("reserve_stock", Action::Execute, 1)
///     .duplicate("ship_order", Action::Execute)
///     .crash_at(7);
/// assert_eq!(plan.faults.len(), 3);
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// The faults; the first that matches an invocation applies.
    pub faults: Vec<Fault>,
    /// Crash the executor instead of writing the log record at this position (0-based).
    pub crash_at: Option<usize>,
}

impl FaultPlan {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a fault.
    pub fn with(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    fn add(
        self,
        step: &str,
        action: Action,
        attempts: RangeInclusive<u32>,
        e: FaultEffect,
    ) -> Self {
        self.with(Fault {
            step: step.to_owned(),
            action,
            attempts,
            effect: e,
        })
    }

    /// The first `times` attempts answer `error`.
    pub fn fail(self, step: &str, action: Action, error: StepError, times: u32) -> Self {
        self.add(step, action, 1..=times, FaultEffect::Fail(error))
    }

    /// The first `times` attempts get no answer (the handler never runs).
    pub fn time_out(self, step: &str, action: Action, times: u32) -> Self {
        self.add(step, action, 1..=times, FaultEffect::Timeout)
    }

    /// The first `times` attempts run the handler but their answer is lost.
    pub fn lose_answer(self, step: &str, action: Action, times: u32) -> Self {
        self.add(step, action, 1..=times, FaultEffect::LoseAnswer)
    }

    /// The first `times` attempts are held back (the step times out) and delivered after the
    /// saga has ended.
    pub fn late(self, step: &str, action: Action, times: u32) -> Self {
        self.add(step, action, 1..=times, FaultEffect::Late)
    }

    /// Every attempt is delivered twice.
    pub fn duplicate(self, step: &str, action: Action) -> Self {
        self.add(step, action, 1..=u32::MAX, FaultEffect::Duplicate)
    }

    /// The first `times` attempts panic inside the participant.
    pub fn panic(self, step: &str, action: Action, times: u32) -> Self {
        self.add(step, action, 1..=times, FaultEffect::Panic)
    }

    /// The first `times` attempts start their handler only `pause` after claiming the key.
    pub fn slow(self, step: &str, action: Action, pause: std::time::Duration, times: u32) -> Self {
        self.add(step, action, 1..=times, FaultEffect::Slow(pause))
    }

    /// Crashes the executor when it is about to write log position `position`.
    pub fn crash_at(mut self, position: usize) -> Self {
        self.crash_at = Some(position);
        self
    }

    /// The same plan without the crash: what a resumed executor runs with.
    pub fn without_crash(&self) -> Self {
        Self {
            faults: self.faults.clone(),
            crash_at: None,
        }
    }

    /// The effect that applies to `attempt` of `action` of `step`, if any.
    pub fn effect(&self, step: &str, action: Action, attempt: u32) -> Option<&FaultEffect> {
        self.faults
            .iter()
            .find(|f| f.step == step && f.action == action && f.attempts.contains(&attempt))
            .map(|f| &f.effect)
    }
}

/// The plans an executor applies: one for every saga, and overrides per saga id.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultPlans {
    pub(crate) all: Option<FaultPlan>,
    pub(crate) by_saga: HashMap<String, FaultPlan>,
}

impl FaultPlans {
    pub(crate) fn for_saga(&self, saga_id: &str) -> Option<&FaultPlan> {
        self.by_saga.get(saga_id).or(self.all.as_ref())
    }
}
