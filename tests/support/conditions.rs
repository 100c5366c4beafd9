//! Random conditions on the random sagas' steps, over an input of flags and a number, each
//! with its truth decided here (for the oracle) without the framework's evaluator.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::step_name;

/// A step's condition, in a form that shrinks to something readable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConditionShape {
    /// `flags.s<i>`, or `!flags.s<i>` when negated.
    Flag { negated: bool },
    /// `n > t`.
    Above(u8),
    /// `n <= t`.
    AtMost(u8),
    /// `present(steps.s<j>)`: the earlier step `j` ran (was not skipped).
    Ran(usize),
    /// `flags.s<i> || n == t`.
    FlagOr(u8),
}

/// What the conditions read: one flag per step and a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub flags: Vec<bool>,
    pub n: u8,
}

impl Inputs {
    /// The saga input: `{"order": <saga id>, "flags": {"s0": true, ...}, "n": 2}`.
    pub fn input(&self, saga_id: &str) -> Value {
        let flags: serde_json::Map<String, Value> = self
            .flags
            .iter()
            .enumerate()
            .map(|(i, flag)| (step_name(i), Value::Bool(*flag)))
            .collect();
        json!({ "order": saga_id, "flags": flags, "n": self.n })
    }
}

impl ConditionShape {
    /// The condition of step `index` as text.
    pub fn text(self, index: usize) -> String {
        let flag = format!("flags.{}", step_name(index));
        match self {
            ConditionShape::Flag { negated: false } => flag,
            ConditionShape::Flag { negated: true } => format!("!{flag}"),
            ConditionShape::Above(t) => format!("n > {t}"),
            ConditionShape::AtMost(t) => format!("n <= {t}"),
            ConditionShape::Ran(j) => format!("present(steps.{})", step_name(j)),
            ConditionShape::FlagOr(t) => format!("{flag} || n == {t}"),
        }
    }

    /// Whether it holds for step `index` given the inputs and the steps that ran before it.
    pub fn holds(self, index: usize, inputs: &Inputs, ran: &[usize]) -> bool {
        let flag = inputs.flags.get(index).copied().unwrap_or(false);
        match self {
            ConditionShape::Flag { negated } => flag != negated,
            ConditionShape::Above(t) => inputs.n > t,
            ConditionShape::AtMost(t) => inputs.n <= t,
            ConditionShape::Ran(j) => ran.contains(&j),
            ConditionShape::FlagOr(t) => flag || inputs.n == t,
        }
    }
}

/// A condition for step `index` (reading only earlier steps), or none, about 2 times in 5.
pub fn condition(index: usize) -> BoxedStrategy<Option<ConditionShape>> {
    let t = 0u8..=4;
    let mut forms = vec![
        (any::<bool>().prop_map(|negated| ConditionShape::Flag { negated })).boxed(),
        t.clone().prop_map(ConditionShape::Above).boxed(),
        t.clone().prop_map(ConditionShape::AtMost).boxed(),
        t.prop_map(ConditionShape::FlagOr).boxed(),
    ];
    if index > 0 {
        forms.push((0..index).prop_map(ConditionShape::Ran).boxed());
    }
    prop::option::weighted(0.4, prop::strategy::Union::new(forms)).boxed()
}

/// Inputs for `steps` steps.
pub fn inputs(steps: usize) -> impl Strategy<Value = Inputs> {
    (prop::collection::vec(any::<bool>(), steps), 0u8..=4)
        .prop_map(|(flags, n)| Inputs { flags, n })
}
