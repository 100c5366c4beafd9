//! Conditions on steps: a small typed language over the saga document that maps one to one
//! onto Step Functions' Choice rules, and is evaluated in memory with the same meaning.
//! The language is described on [`Condition`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value, json};

mod parse;

pub use parse::ConditionError;

/// A field of the saga document: the input's (`car_wanted`, `traveller.age`) or an earlier
/// step's output (`steps.flight.price`). Each segment is an identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocumentPath(Vec<String>);

impl DocumentPath {
    /// The path `segments` (identifiers, checked by [`Condition::parse`]).
    fn new(segments: Vec<String>) -> Self {
        Self(segments)
    }

    /// The path's segments.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// The step whose output the path reads (`flight` for `steps.flight.price`), if any.
    pub fn step(&self) -> Option<&str> {
        match self.0.as_slice() {
            [steps, step, ..] if steps == crate::protocol::DOCUMENT_STEPS => Some(step),
            _ => None,
        }
    }

    /// The path as a Step Functions reference path: `$.steps.flight.price`.
    pub fn json_path(&self) -> String {
        let mut path = String::from("$");
        for segment in &self.0 {
            path.push('.');
            path.push_str(segment);
        }
        path
    }

    /// The value at the path in `document`, if it is there.
    pub fn lookup<'v>(&self, document: &'v Value) -> Option<&'v Value> {
        self.0
            .iter()
            .try_fold(document, |value, segment| value.as_object()?.get(segment))
    }
}

impl fmt::Display for DocumentPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// A value a field is compared with for equality.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string (`StringEquals`).
    String(String),
    /// A number (`NumericEquals`, compared as numbers: `2` equals `2.0`).
    Number(Number),
    /// A boolean (`BooleanEquals`).
    Bool(bool),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // JSON's string syntax is the language's.
            Literal::String(s) => write!(f, "{}", Value::from(s.as_str())),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `<` (`NumericLessThan`).
    Less,
    /// `<=` (`NumericLessThanEquals`).
    LessOrEqual,
    /// `>` (`NumericGreaterThan`).
    Greater,
    /// `>=` (`NumericGreaterThanEquals`).
    GreaterOrEqual,
}

impl Comparison {
    fn symbol(self) -> &'static str {
        match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }

    fn operator(self) -> &'static str {
        match self {
            Comparison::Less => "NumericLessThan",
            Comparison::LessOrEqual => "NumericLessThanEquals",
            Comparison::Greater => "NumericGreaterThan",
            Comparison::GreaterOrEqual => "NumericGreaterThanEquals",
        }
    }

    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Comparison::Less => left < right,
            Comparison::LessOrEqual => left <= right,
            Comparison::Greater => left > right,
            Comparison::GreaterOrEqual => left >= right,
        }
    }
}

/// A predicate over the saga document, one to one with a Step Functions Choice rule.
///
/// A condition reads the saga document: the input's fields by name (`car_wanted`,
/// `traveller.age`) and the outputs of earlier steps under `steps` (`steps.flight.price`).
/// Written as text (the `#[saga]` attribute `when = "..."`, or [`Condition::parse`]):
///
/// ```text
/// car_wanted                          a boolean field is true
/// nights > 2 && class == "business"   numeric comparison, string equality, and
/// present(steps.flight.seat)          the field exists (whatever its value)
/// !(country == "FR") || vip           not, or
/// discount == null                    the field exists and is null
/// ```
///
/// Every comparison is false when its field is missing or holds another type: on Step
/// Functions each is guarded (`IsPresent`, then `IsString`, `IsNumeric` or `IsBoolean`, in an
/// `And`, which Step Functions evaluates left to right and stops at the first false rule), so
/// no document makes a Choice state fail, and the in-memory executor decides the same.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// The field exists, whatever its value (`present(path)`; `IsPresent`).
    Present(DocumentPath),
    /// The field exists and is null (`path == null`; `IsNull`).
    Null(DocumentPath),
    /// The field holds this value, of this type (`path == literal`).
    Equals(DocumentPath, Literal),
    /// The field is a number that compares so with this one (`path > 2`).
    Compare(DocumentPath, Comparison, Number),
    /// The condition does not hold (`!condition`, `path != literal`).
    Not(Box<Condition>),
    /// Every condition holds (`a && b`).
    And(Vec<Condition>),
    /// At least one condition holds (`a || b`).
    Or(Vec<Condition>),
}

impl Condition {
    /// Parses the text form (see [`Condition`]).
    ///
    /// ```
    /// use saga_core::Condition;
    ///
    /// let condition = Condition::parse("car_wanted && nights > 2").unwrap();
    /// assert!(condition.holds(&serde_json::json!({"car_wanted": true, "nights": 3})));
    /// assert!(!condition.holds(&serde_json::json!({"car_wanted": true})));
    /// let error = Condition::parse("nights > two").unwrap_err();
    /// assert!(error.to_string().contains("compares numbers"), "{error}");
    /// ```
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        parse::parse(text)
    }

    /// Whether the condition holds for `document`, as a Step Functions Choice state decides
    /// on the rule [`choice_rule`](Self::choice_rule) renders.
    pub fn holds(&self, document: &Value) -> bool {
        match self {
            Condition::Present(path) => path.lookup(document).is_some(),
            Condition::Null(path) => path.lookup(document).is_some_and(Value::is_null),
            Condition::Equals(path, literal) => match (path.lookup(document), literal) {
                (Some(Value::String(value)), Literal::String(expected)) => value == expected,
                (Some(Value::Bool(value)), Literal::Bool(expected)) => value == expected,
                (Some(Value::Number(value)), Literal::Number(expected)) => {
                    value.as_f64() == expected.as_f64()
                }
                _ => false,
            },
            Condition::Compare(path, comparison, right) => {
                match (
                    path.lookup(document).and_then(Value::as_f64),
                    right.as_f64(),
                ) {
                    (Some(left), Some(right)) => comparison.holds(left, right),
                    _ => false,
                }
            }
            Condition::Not(condition) => !condition.holds(document),
            Condition::And(conditions) => conditions.iter().all(|c| c.holds(document)),
            Condition::Or(conditions) => conditions.iter().any(|c| c.holds(document)),
        }
    }

    /// The Step Functions Choice rule (JSONPath, without `Next`) that holds exactly when this
    /// condition does: each comparison guarded by `IsPresent` and the type test of its value.
    pub fn choice_rule(&self) -> Value {
        let guarded = |path: &DocumentPath, test: Option<&str>, rule: (&str, Value)| {
            let variable = path.json_path();
            let mut rules = vec![json!({"Variable": variable, "IsPresent": true})];
            if let Some(test) = test {
                rules.push(json!({"Variable": variable, test: true}));
            }
            rules.push(json!({"Variable": variable, rule.0: rule.1}));
            json!({ "And": rules })
        };
        match self {
            Condition::Present(path) => json!({"Variable": path.json_path(), "IsPresent": true}),
            Condition::Null(path) => guarded(path, None, ("IsNull", Value::Bool(true))),
            Condition::Equals(path, Literal::String(s)) => guarded(
                path,
                Some("IsString"),
                ("StringEquals", Value::from(s.as_str())),
            ),
            Condition::Equals(path, Literal::Number(n)) => guarded(
                path,
                Some("IsNumeric"),
                ("NumericEquals", Value::Number(n.clone())),
            ),
            Condition::Equals(path, Literal::Bool(b)) => {
                guarded(path, Some("IsBoolean"), ("BooleanEquals", Value::Bool(*b)))
            }
            Condition::Compare(path, comparison, n) => guarded(
                path,
                Some("IsNumeric"),
                (comparison.operator(), Value::Number(n.clone())),
            ),
            Condition::Not(condition) => json!({ "Not": condition.choice_rule() }),
            Condition::And(conditions) => {
                json!({ "And": conditions.iter().map(Self::choice_rule).collect::<Vec<_>>() })
            }
            Condition::Or(conditions) => {
                json!({ "Or": conditions.iter().map(Self::choice_rule).collect::<Vec<_>>() })
            }
        }
    }

    /// Every field the condition reads.
    pub fn paths(&self) -> Vec<&DocumentPath> {
        match self {
            Condition::Present(path)
            | Condition::Null(path)
            | Condition::Equals(path, _)
            | Condition::Compare(path, _, _) => vec![path],
            Condition::Not(condition) => condition.paths(),
            Condition::And(conditions) | Condition::Or(conditions) => {
                conditions.iter().flat_map(Self::paths).collect()
            }
        }
    }

    /// How deep the rule nests (`Not`, `And`, `Or` and the guards' `And` each add a level):
    /// Step Functions documents no limit, validators and readers do better with a small one.
    fn depth(&self) -> usize {
        match self {
            Condition::Present(_) => 1,
            Condition::Null(_) | Condition::Equals(..) | Condition::Compare(..) => 2,
            Condition::Not(condition) => 1 + condition.depth(),
            Condition::And(conditions) | Condition::Or(conditions) => {
                1 + conditions.iter().map(Self::depth).max().unwrap_or(0)
            }
        }
    }

    /// Writes the text form, in parentheses when it binds more loosely than `inside` needs.
    fn write(&self, f: &mut fmt::Formatter<'_>, inside: Precedence) -> fmt::Result {
        let own = match self {
            Condition::Or(_) => Precedence::Or,
            Condition::And(_) => Precedence::And,
            Condition::Null(_) | Condition::Equals(..) | Condition::Compare(..) => {
                Precedence::Compare
            }
            Condition::Not(condition) if is_comparison(condition) => Precedence::Compare,
            Condition::Not(_) => Precedence::Not,
            Condition::Present(_) => Precedence::Atom,
        };
        let own = match self {
            Condition::Equals(_, Literal::Bool(true)) => Precedence::Atom,
            _ => own,
        };
        let parenthesised = own < inside;
        if parenthesised {
            f.write_str("(")?;
        }
        match self {
            Condition::Present(path) => write!(f, "present({path})")?,
            Condition::Null(path) => write!(f, "{path} == null")?,
            Condition::Equals(path, Literal::Bool(true)) => write!(f, "{path}")?,
            Condition::Equals(path, literal) => write!(f, "{path} == {literal}")?,
            Condition::Compare(path, comparison, n) => {
                write!(f, "{path} {} {n}", comparison.symbol())?;
            }
            Condition::Not(condition) => match condition.as_ref() {
                Condition::Equals(path, literal) if is_comparison(condition) => {
                    write!(f, "{path} != {literal}")?;
                }
                Condition::Null(path) => write!(f, "{path} != null")?,
                other => {
                    f.write_str("!")?;
                    other.write(f, Precedence::Not)?;
                }
            },
            Condition::And(conditions) | Condition::Or(conditions) => {
                let separator = if own == Precedence::And {
                    " && "
                } else {
                    " || "
                };
                for (i, condition) in conditions.iter().enumerate() {
                    if i > 0 {
                        f.write_str(separator)?;
                    }
                    condition.write(f, own.inner())?;
                }
            }
        }
        if parenthesised {
            f.write_str(")")?;
        }
        Ok(())
    }

    /// The deepest nesting a condition may have (with the guards a comparison adds).
    pub const MAX_DEPTH: usize = 8;

    /// Checks the nesting against [`MAX_DEPTH`](Self::MAX_DEPTH).
    pub(crate) fn check_depth(&self) -> Result<(), String> {
        let depth = self.depth();
        if depth > Self::MAX_DEPTH {
            return Err(format!(
                "it nests {depth} levels deep, at most {} are allowed: split it, or name what it \
                 tests in the input",
                Self::MAX_DEPTH
            ));
        }
        Ok(())
    }
}

/// Whether `condition` prints as a comparison with `!=` when negated (`a != 1`, not `!a`).
fn is_comparison(condition: &Condition) -> bool {
    match condition {
        Condition::Equals(_, literal) => *literal != Literal::Bool(true),
        Condition::Null(_) => true,
        _ => false,
    }
}

/// How tightly a form binds, loosest first, to print parentheses only where needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Precedence {
    Or,
    And,
    /// `a == 1`, `a != 1`, `a > 1`: parenthesised under `!`, so `!(a == 1)` reads as meant.
    Compare,
    Not,
    Atom,
}

impl Precedence {
    /// What an operand of this form must bind at least as tightly as: an `&&` inside an `||`
    /// needs no parentheses, an `||` inside `&&` does, and so does an `&&` inside an `&&` (it
    /// was written so and is kept so).
    fn inner(self) -> Self {
        match self {
            Precedence::Or => Precedence::And,
            Precedence::And => Precedence::Compare,
            other => other,
        }
    }
}

impl fmt::Display for Condition {
    /// The text form, which [`Condition::parse`] reads back to the same condition.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, Precedence::Or)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Condition::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What [`StepBuilder::when`](crate::StepBuilder::when) takes: a [`Condition`], or its text
/// form (parsed when the saga is built, a [`DefinitionError`](crate::DefinitionError) if it
/// does not parse).
pub trait IntoCondition {
    /// The condition, or why the text is not one.
    fn into_condition(self) -> Result<Condition, ConditionError>;
}

impl IntoCondition for Condition {
    fn into_condition(self) -> Result<Condition, ConditionError> {
        Ok(self)
    }
}

impl IntoCondition for &str {
    fn into_condition(self) -> Result<Condition, ConditionError> {
        Condition::parse(self)
    }
}

impl IntoCondition for String {
    fn into_condition(self) -> Result<Condition, ConditionError> {
        Condition::parse(&self)
    }
}

#[cfg(test)]
mod tests;
