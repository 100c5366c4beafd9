//! Step Functions' hard limits, checked when a definition is built instead of failing at run
//! time: definition size, execution history length, state names, payload size.

use std::collections::BTreeMap;

use serde::Serialize;
use thiserror::Error;

use super::cost::Cost;
use super::payload::{MAX_PAYLOAD_BYTES, RESERVE};
use crate::asl::{State, StateMachine, generate, substitution_key};
use crate::definition::SagaDefinition;
use crate::definition::names::check_name;

/// The largest definition Step Functions accepts, in bytes (1 MB).
pub const MAX_DEFINITION_BYTES: usize = 1_048_576;
/// The most events an execution's history may hold.
pub const MAX_HISTORY_EVENTS: u64 = 25_000;

/// A limit a saga would break.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The generated definition is too large.
    #[error(
        "the state machine definition is {bytes} bytes; Step Functions accepts at most {MAX_DEFINITION_BYTES}"
    )]
    DefinitionTooLarge {
        /// Its size.
        bytes: usize,
    },
    /// The worst-case execution would overflow its history.
    #[error(
        "in the worst case ({path}) an execution writes about {events} history events; Step \
         Functions stops at {MAX_HISTORY_EVENTS}: lower the retry counts or split the saga"
    )]
    HistoryTooLong {
        /// Estimated events.
        events: u64,
        /// The path that writes them.
        path: String,
    },
    /// A generated state name is not a valid state name.
    #[error("state `{state}` is not a valid state name: {reason}; shorten step `{step}`")]
    StateName {
        /// The state.
        state: String,
        /// The step it comes from.
        step: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// Two participants would share one deploy-time substitution variable.
    #[error(
        "participants `{first}` and `{second}` both map to the substitution `${{{key}}}`; rename one"
    )]
    SubstitutionClash {
        /// The variable.
        key: String,
        /// One participant.
        first: String,
        /// The other.
        second: String,
    },
    /// A payload is larger than a state may carry.
    #[error(
        "{what} is {bytes} bytes; Step Functions carries at most {MAX_PAYLOAD_BYTES} bytes per state"
    )]
    PayloadTooLarge {
        /// What was measured.
        what: String,
        /// Its size.
        bytes: usize,
    },
    /// A saga document (an input, or what a step's output grows) is larger than its budget:
    /// one state may carry it `copies` times (see [`payload`](super::payload)).
    #[error(
        "{what} is {bytes} bytes; at most {limit} fit: Step Functions carries \
         {MAX_PAYLOAD_BYTES} bytes per state, a parallel group's result one copy per branch \
         ({copies} here), and {RESERVE} are kept for a failure's `error` and a command's envelope"
    )]
    DocumentTooLarge {
        /// What was measured.
        what: String,
        /// Its size.
        bytes: usize,
        /// Its budget.
        limit: usize,
        /// How many copies of it one state may carry.
        copies: usize,
    },
}

/// What the limits check measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    /// Compact definition size in bytes.
    pub definition_bytes: usize,
    /// Estimated history events of the worst-case path.
    pub worst_case_history_events: u64,
    /// Number of states.
    pub states: usize,
}

/// Estimated history events of an execution along `path`: ExecutionStarted and its end; per
/// task state entered, StateEntered and StateExited; per attempt, TaskScheduled, TaskStarted,
/// TaskSubmitted and the result; StateEntered and StateExited for a Choice, Pass or Succeed
/// state, one event for a Fail state; ParallelStateEntered, -Started, -Succeeded (or -Failed)
/// and -Exited for a `Parallel` state, whose branches' states are on the path as well (on a
/// failure in a group, every sibling branch run to its end: see [`Cost`]). An upper bound, on
/// purpose.
fn history_events(machine: &StateMachine, path: &super::cost::PathCost) -> u64 {
    let per_state: u64 = path
        .states
        .iter()
        .map(|name| match machine.find(name) {
            Some(State::Task(task)) => {
                let retries = u64::from(task.max_retries());
                2 + 4 * (1 + retries)
            }
            Some(State::Choice(_) | State::Succeed(_) | State::Pass(_)) => 2,
            Some(State::Parallel(_)) => 4,
            _ => 1,
        })
        .sum();
    2 + per_state
}

/// Checks every limit for `definition`; all problems are returned, in order.
pub fn check(definition: &SagaDefinition) -> Result<Limits, Vec<LimitError>> {
    let machine = generate(definition);
    let mut errors = Vec::new();

    // One error per step: the longest of its generated state names that is invalid.
    let mut by_step: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (state, _) in machine.all_states() {
        if let Err(reason) = check_name(state) {
            let step = state.split('.').next().unwrap_or(state).to_owned();
            let entry = by_step
                .entry(step)
                .or_insert_with(|| (state.to_owned(), reason.clone()));
            if state.len() > entry.0.len() {
                *entry = (state.to_owned(), reason);
            }
        }
    }
    for (step, (state, reason)) in by_step {
        errors.push(LimitError::StateName {
            state,
            step,
            reason,
        });
    }

    let mut keys: BTreeMap<String, &str> = BTreeMap::new();
    for step in &definition.steps {
        let key = substitution_key(&step.participant);
        let name = step.participant.name();
        match keys.get(&key) {
            Some(first) if *first != name => errors.push(LimitError::SubstitutionClash {
                key,
                first: (*first).to_owned(),
                second: name.to_owned(),
            }),
            _ => {
                keys.insert(key, name);
            }
        }
    }

    let definition_bytes = machine.to_json().len();
    if definition_bytes > MAX_DEFINITION_BYTES {
        errors.push(LimitError::DefinitionTooLarge {
            bytes: definition_bytes,
        });
    }

    let cost = Cost::of(&machine);
    let worst = cost
        .paths
        .iter()
        .map(|p| (history_events(&machine, p), p))
        .max_by_key(|(events, _)| *events);
    let worst_case_history_events = worst.map(|(e, _)| e).unwrap_or(0);
    if let Some((events, path)) = worst
        && events > MAX_HISTORY_EVENTS
    {
        errors.push(LimitError::HistoryTooLong {
            events,
            path: path.description.clone(),
        });
    }

    if errors.is_empty() {
        Ok(Limits {
            definition_bytes,
            worst_case_history_events,
            states: machine.states.0.len(),
        })
    } else {
        Err(errors)
    }
}
