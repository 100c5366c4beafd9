//! A typed model of the Amazon States Language subset the generator emits (JSONPath query
//! language). Serialises to the exact JSON Step Functions accepts; no string concatenation.

use serde::de::{MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A state machine definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateMachine {
    /// A description for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The first state.
    pub start_at: String,
    /// The states, in the order they were generated (forward path, then compensation chain,
    /// then ends).
    pub states: States,
}

impl StateMachine {
    /// The state called `name` at the top level.
    pub fn state(&self, name: &str) -> Option<&State> {
        self.states
            .0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    /// The state called `name` anywhere: at the top level or in a `Parallel` state's branch.
    pub fn find(&self, name: &str) -> Option<&State> {
        self.state(name).or_else(|| {
            self.states.0.iter().find_map(|(_, state)| match state {
                State::Parallel(parallel) => parallel.branches.iter().find_map(|b| b.find(name)),
                _ => None,
            })
        })
    }

    /// Every state with its name, branches' states after their `Parallel` state, depth first.
    pub fn all_states(&self) -> Vec<(&str, &State)> {
        let mut all = Vec::new();
        for (name, state) in &self.states.0 {
            all.push((name.as_str(), state));
            if let State::Parallel(parallel) = state {
                for branch in &parallel.branches {
                    all.extend(branch.all_states());
                }
            }
        }
        all
    }

    /// The definition as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a state machine always serialises")
    }

    /// The definition as compact JSON (what is deployed, and what the 1 MB limit counts).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a state machine always serialises")
    }
}

/// Named states in a fixed order (serialised as a JSON object in that order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct States(pub Vec<(String, State)>);

impl Serialize for States {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, state) in &self.0 {
            map.serialize_entry(name, state)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for States {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Keep the document's order (a `Map` would sort the names).
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = States;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of states")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<States, A::Error> {
                let mut states = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((name, state)) = map.next_entry::<String, State>()? {
                    states.push((name, state));
                }
                Ok(States(states))
            }
        }
        deserializer.deserialize_map(Ordered)
    }
}

/// A state (only the types the generator uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "Type")]
pub enum State {
    /// Does work through a service integration.
    Task(Box<TaskState>),
    /// Ends the execution as failed, with an error name and a cause.
    Fail(FailState),
    /// Goes on at the first rule's `Next` that holds, else at `Default`.
    Choice(ChoiceState),
    /// Ends the execution (or, in a `Parallel` branch, the branch) as succeeded.
    Succeed(SucceedState),
    /// Runs branches at the same time and goes on when all have ended.
    Parallel(Box<ParallelState>),
    /// Puts a fixed value into the document.
    Pass(PassState),
}

/// A `Parallel` state: its branches (each a state machine of its own, with state names unique
/// across the whole definition), how the array of their outputs becomes its output, and where
/// a failure of any branch goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParallelState {
    /// The branches, in declaration order (the output array's order).
    pub branches: Vec<StateMachine>,
    /// A payload template over the array of branch outputs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result_selector: Option<Value>,
    /// Where the (selected) result goes.
    pub result_path: ResultPath,
    /// The part of the document the state passes on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_path: Option<String>,
    /// Catchers: a branch that fails fails the whole state.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub catch: Vec<Catcher>,
    /// The next state, or the end.
    #[serde(flatten)]
    pub transition: Transition,
}

/// A `Pass` state putting `Result` at `ResultPath`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PassState {
    /// The value.
    pub result: Value,
    /// Where it goes.
    pub result_path: ResultPath,
    /// The next state, or the end.
    #[serde(flatten)]
    pub transition: Transition,
}

/// A `Choice` state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChoiceState {
    /// What the choice decides, for a reader (the condition's text).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub comment: Option<String>,
    /// The rules, each a Choice rule (JSONPath) with its `Next`.
    pub choices: Vec<ChoiceRule>,
    /// Where to go when no rule holds.
    pub default: String,
}

/// One rule of a `Choice` state: the rule's fields (`Variable` and a comparison, or `And`,
/// `Or`, `Not`) and the state to go on at when it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceRule {
    /// The rule (see [`Condition::choice_rule`](crate::Condition::choice_rule)).
    #[serde(flatten)]
    pub rule: serde_json::Map<String, Value>,
    /// The state to go on at.
    #[serde(rename = "Next")]
    pub next: String,
}

/// A `Succeed` state (no fields of its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SucceedState {}

/// A `Task` state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskState {
    /// The integration, e.g. `arn:aws:states:::sqs:sendMessage.waitForTaskToken`.
    pub resource: String,
    /// The integration's parameters (a payload template).
    pub parameters: Value,
    /// The longest one attempt may take.
    pub timeout_seconds: u32,
    /// The longest the participant may stay silent (callback tasks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u32>,
    /// Where the result goes; `Discard` keeps the input unchanged (`null`).
    pub result_path: ResultPath,
    /// Retriers, tried in order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub retry: Vec<Retrier>,
    /// Catchers, tried in order after the retries are exhausted.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub catch: Vec<Catcher>,
    /// The next state, or the end.
    #[serde(flatten)]
    pub transition: Transition,
}

impl TaskState {
    /// The most retries the task's retriers allow together (0 without a retrier): ASL counts
    /// each retrier's attempts on its own, so a task whose errors match them in turn can use
    /// every one's.
    pub fn max_retries(&self) -> u32 {
        self.retry.iter().map(|r| r.max_attempts).sum()
    }
}

/// A `Fail` state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailState {
    /// The error name the execution fails with.
    pub error: String,
    /// A human-readable cause.
    pub cause: String,
}

/// `Next` or `End`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Transition {
    /// Continue with this state.
    Next {
        /// The state.
        #[serde(rename = "Next")]
        next: String,
    },
    /// The execution succeeds here.
    End {
        /// Always `true`.
        #[serde(rename = "End")]
        end: bool,
    },
}

impl Transition {
    /// `Next: state`.
    pub fn next(state: impl Into<String>) -> Self {
        Transition::Next { next: state.into() }
    }

    /// `End: true`.
    pub fn end() -> Self {
        Transition::End { end: true }
    }
}

/// `ResultPath`: a reference path, or `null` to discard the result.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultPath {
    /// `null`: the state's output is its input.
    Discard,
    /// The result goes to this path, e.g. `$.steps.reserve_stock`.
    Path(String),
}

impl Serialize for ResultPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ResultPath::Discard => serializer.serialize_none(),
            ResultPath::Path(path) => serializer.serialize_str(path),
        }
    }
}

impl<'de> Deserialize<'de> for ResultPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<String>::deserialize(deserializer)? {
            None => ResultPath::Discard,
            Some(path) => ResultPath::Path(path),
        })
    }
}

/// A `Retry` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Retrier {
    /// The error names it applies to.
    pub error_equals: Vec<String>,
    /// Delay before the first retry.
    pub interval_seconds: u32,
    /// Retries after the first attempt.
    pub max_attempts: u32,
    /// Multiplier per retry.
    pub backoff_rate: f64,
    /// Cap on any delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delay_seconds: Option<u32>,
    /// `FULL` or `NONE` (omitted when `NONE`, the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_strategy: Option<String>,
}

/// A `Catch` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Catcher {
    /// The error names it applies to.
    pub error_equals: Vec<String>,
    /// Where the error output goes.
    pub result_path: String,
    /// The state to continue with.
    pub next: String,
}
