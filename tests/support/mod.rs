//! Test participants that record every applied effect in a ledger, random saga shapes and
//! fault plans, and an oracle (`oracle.rs`): a model of the saga semantics (README, "The
//! semantics"), written independently of the executor, that predicts the outcome and the ledger
//! of a case.

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use proptest::prelude::*;
use saga::testing::{Fault, FaultEffect, FaultPlan};
use saga::{Action, Compensable, FailureKind, Outcome, Step, StepContext, StepError, StepKind};
use serde_json::{Value, json};

mod checks;
mod conditions;
mod lock;
mod oracle;
mod shape;
mod stores;

// Each test uses its part of the support.
#[allow(unused_imports)]
pub use conditions::{ConditionShape, Inputs};
#[allow(unused_imports)]
pub use lock::{check_the_lock, draw, on_step_functions};
#[allow(unused_imports)]
pub use shape::{Policy, Shape, StepShape, policy, shape, with_lambdas};
#[allow(unused_imports)]
pub use stores::StoreKind;

// Only the property tests ask the oracle and check runs.
#[allow(unused_imports)]
pub use checks::{
    check_atomicity, check_no_execute_after_compensation, check_prediction,
    executed_after_compensation, step_action,
};
#[allow(unused_imports)]
pub use oracle::*;

/// One effect a test participant applied (or, for a compensation, found nothing to undo).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Effect {
    pub saga_id: String,
    pub step: String,
    pub action: Action,
    /// For a compensation: whether it undid an applied execute effect.
    pub undid: bool,
    /// For a compensation: whether it received its step's own output.
    pub had_output: bool,
}

/// Every effect applied by the test participants, in order, per saga.
#[derive(Debug, Default)]
pub struct Ledger {
    by_saga: Mutex<HashMap<String, Vec<Effect>>>,
}

impl Ledger {
    /// The effects applied for `saga_id`, in order.
    pub fn of(&self, saga_id: &str) -> Vec<Effect> {
        let by_saga = self.by_saga.lock().unwrap();
        by_saga.get(saga_id).cloned().unwrap_or_default()
    }

    fn push(&self, effect: Effect) {
        let mut by_saga = self.by_saga.lock().unwrap();
        by_saga
            .entry(effect.saga_id.clone())
            .or_default()
            .push(effect);
    }

    /// Whether `step` of `saga_id` has an execute effect not yet undone.
    fn applied_and_not_undone(&self, saga_id: &str, step: &str) -> bool {
        let by_saga = self.by_saga.lock().unwrap();
        let effects = by_saga.get(saga_id).map(Vec::as_slice).unwrap_or_default();
        let mine = |e: &&Effect| e.step == step;
        let applied = effects
            .iter()
            .filter(mine)
            .any(|e| e.action == Action::Execute);
        let undone = effects
            .iter()
            .filter(mine)
            .any(|e| e.action == Action::Compensate && e.undid);
        applied && !undone
    }
}

/// A participant that applies its effect to the ledger and checks the data flow: it must see
/// the output of every earlier step it can see (an earlier conditional one's only if it ran;
/// in a group, none of the sibling branches'), and its compensation its own output when it
/// succeeded.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub ledger: Arc<Ledger>,
    pub index: usize,
    /// Which steps have a condition: an earlier one may have been skipped.
    pub conditional: Arc<Vec<bool>>,
    /// Each step's group and branch, if any.
    pub groups: Arc<Vec<Option<(usize, usize)>>>,
}

impl Recorder {
    /// Whether step `index` reads the output of the earlier step `earlier`: a step of an
    /// earlier stage, or of its own branch.
    fn sees(&self, earlier: usize) -> bool {
        let (mine, theirs) = (self.groups[self.index], self.groups[earlier]);
        match (mine, theirs) {
            (Some((group, _)), Some((other, _))) if group == other => mine == theirs,
            _ => true,
        }
    }
}

impl Step for Recorder {
    type Input = Value;
    type Output = Value;

    async fn execute(&self, cx: &StepContext<'_>, input: Value) -> Result<Value, StepError> {
        let seen: HashSet<String> = input
            .get("steps")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let earlier: HashSet<String> = (0..self.index)
            .filter(|&i| self.sees(i))
            .map(step_name)
            .collect();
        let always: HashSet<String> = (0..self.index)
            .filter(|&i| self.sees(i) && !self.conditional[i])
            .map(step_name)
            .collect();
        if !(seen.is_subset(&earlier) && always.is_subset(&seen)) {
            let expected = &always;
            return Err(StepError::terminal(
                "DataFlow",
                format!(
                    "step {} saw outputs {seen:?}, expected {expected:?}",
                    self.index
                ),
            ));
        }
        self.ledger.push(Effect {
            saga_id: cx.saga_id().to_owned(),
            step: cx.step().to_owned(),
            action: Action::Execute,
            undid: false,
            had_output: false,
        });
        Ok(json!({ "by": cx.step(), "key": cx.idempotency_key().as_str() }))
    }
}

impl Compensable for Recorder {
    async fn compensate(
        &self,
        cx: &StepContext<'_>,
        _input: Value,
        output: Option<Value>,
    ) -> Result<(), StepError> {
        if let Some(output) = &output {
            let key = format!("{}/{}/execute", cx.saga_id(), cx.step());
            if output["key"] != key.as_str() {
                return Err(StepError::terminal(
                    "DataFlow",
                    "compensation got another output",
                ));
            }
        }
        if cx.error().is_none() {
            return Err(StepError::terminal(
                "DataFlow",
                "compensation without the error",
            ));
        }
        let undid = self.ledger.applied_and_not_undone(cx.saga_id(), cx.step());
        self.ledger.push(Effect {
            saga_id: cx.saga_id().to_owned(),
            step: cx.step().to_owned(),
            action: Action::Compensate,
            undid,
            had_output: output.is_some(),
        });
        Ok(())
    }
}

pub fn step_name(index: usize) -> String {
    format!("s{index}")
}

/// A fault on a step, in a form that shrinks to something readable.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub step: usize,
    pub action: Action,
    pub first_attempt: u32,
    pub attempts: u32,
    pub effect: FaultEffect,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub shape: Shape,
    pub faults: Vec<FaultSpec>,
    /// What the steps' conditions read.
    pub inputs: Inputs,
}

impl Case {
    /// The saga input of `saga_id`.
    pub fn input(&self, saga_id: &str) -> Value {
        self.inputs.input(saga_id)
    }

    pub fn plan(&self) -> FaultPlan {
        self.faults.iter().fold(FaultPlan::new(), |plan, f| {
            let first = f.first_attempt;
            plan.with(Fault {
                step: step_name(f.step),
                action: f.action,
                attempts: first..=first + f.attempts - 1,
                effect: f.effect.clone(),
            })
        })
    }
}

pub fn fault_effect() -> impl Strategy<Value = FaultEffect> {
    prop_oneof![
        3 => Just(FaultEffect::Fail(StepError::retryable("injected"))),
        2 => Just(FaultEffect::Fail(StepError::terminal("Injected", "injected"))),
        1 => Just(FaultEffect::Timeout),
        1 => Just(FaultEffect::LoseAnswer),
        1 => Just(FaultEffect::Duplicate),
        1 => Just(FaultEffect::Panic),
    ]
}

pub fn case(min: usize, max: usize) -> impl Strategy<Value = Case> {
    case_with(min, max, false)
}

/// As [`case`], and the faults include the two that timing decides: `Late` (an execute held
/// back, its step timed out, and delivered once more after the saga has ended) and `Slow` (a
/// handler that starts a while after its claim, within the step's timeout, so it may still run
/// when a sibling branch fails). The oracle does not predict these; the properties that use
/// them check what must hold whatever the timing.
pub fn timed_case(min: usize, max: usize) -> impl Strategy<Value = Case> {
    case_with(min, max, true)
}

fn case_with(min: usize, max: usize, timed: bool) -> impl Strategy<Value = Case> {
    shape(min, max).prop_flat_map(move |shape| {
        let n = shape.steps.len();
        // A `Slow` handler on `step` waits `share` % of the step's timeout: within it, a slow
        // handler and not a timed-out one.
        let timeouts: Vec<u32> = shape.steps.iter().map(|s| s.timeout).collect();
        let slow = move |step: usize, share: u32| {
            FaultEffect::Slow(Duration::from_secs(timeouts[step].into()) * share / 100)
        };
        let slow_in_hazard = slow.clone();
        // The share is drawn with the effect, the pause made once the step is known.
        let effect = if timed {
            prop_oneof![
                4 => (fault_effect(), Just(0u32)),
                2 => (Just(FaultEffect::Late), Just(0u32)),
                3 => (Just(FaultEffect::Slow(Duration::ZERO)), 1u32..100),
            ]
            .boxed()
        } else {
            (fault_effect(), Just(0u32)).boxed()
        };
        let fault = (
            0..n,
            prop::sample::select(vec![Action::Execute, Action::Compensate]),
            1u32..=3,
            1u32..=6,
            effect,
        )
            .prop_map(
                move |(step, action, first_attempt, attempts, (effect, share))| {
                    let effect = match effect {
                        FaultEffect::Slow(_) => slow(step, share),
                        other => other,
                    };
                    FaultSpec {
                        step,
                        action,
                        first_attempt,
                        attempts,
                        effect,
                    }
                },
            );
        // Timed, a group's hazard half the time: a slow step in one branch while a step of
        // another fails for good, so the compensation meets an execute still in flight.
        let rivals: Vec<(usize, usize)> = (0..n)
            .flat_map(|a| (0..n).map(move |b| (a, b)))
            .filter(|&(a, b)| {
                let (ga, gb) = (shape.steps[a].group, shape.steps[b].group);
                matches!((ga, gb), (Some(x), Some(y)) if x.0 == y.0 && x.1 != y.1)
            })
            .collect();
        let hazard = if timed && !rivals.is_empty() {
            (prop::sample::select(rivals), 1u32..100, any::<bool>())
                .prop_map(move |((slow, failing), share, on)| {
                    let fault = |step, effect| FaultSpec {
                        step,
                        action: Action::Execute,
                        first_attempt: 1,
                        attempts: 1,
                        effect,
                    };
                    let terminal = StepError::terminal("Injected", "injected");
                    if on {
                        vec![
                            fault(slow, slow_in_hazard(slow, share)),
                            fault(failing, FaultEffect::Fail(terminal)),
                        ]
                    } else {
                        Vec::new()
                    }
                })
                .boxed()
        } else {
            Just(Vec::new()).boxed()
        };
        (
            Just(shape),
            prop::collection::vec(fault, 0..=4),
            hazard,
            conditions::inputs(n),
        )
            .prop_map(|(shape, mut faults, hazard, inputs)| {
                faults.extend(hazard);
                Case {
                    shape,
                    faults,
                    inputs,
                }
            })
    })
}

/// A current-thread runtime with paused time: retries and timeouts cost nothing.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    quiet_injected_panics();
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime")
}

/// Injected panics are expected; keep them out of the test output (others still print).
pub fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with("injected panic") {
                default(info);
            }
        }));
    });
}
