//! The names Step Functions, SQS and Lambda accept: a saga's, a step's, a participant's.

use super::Participant;

/// The longest name Step Functions accepts for a state or a state machine.
pub const MAX_NAME_LEN: usize = 80;
/// Characters Step Functions forbids in state and state machine names (besides white space and
/// control characters).
pub const FORBIDDEN_NAME_CHARS: &str = "<>{}[]?*\"#%\\^|~`$&,;:/";

/// Checks a Step Functions state or state machine name; the error says which rule it breaks.
pub fn check_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if len == 0 {
        return Err("the name is empty".to_owned());
    }
    if len > MAX_NAME_LEN {
        return Err(format!(
            "the name has {len} characters, more than {MAX_NAME_LEN}"
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace()) {
        return Err(format!("the name contains white space {c:?}"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("the name contains the control character {c:?}"));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN_NAME_CHARS.contains(*c)) {
        return Err(format!(
            "the name contains {c:?}, which Step Functions forbids"
        ));
    }
    Ok(())
}

/// Checks a step name: a valid state name that is also an identifier (ASCII letters, digits and
/// `_`, not starting with a digit), since it becomes the JSON path `$.steps.<name>` and the
/// prefix of generated state names such as `<name>.compensate`.
pub fn check_step_name(name: &str) -> Result<(), String> {
    check_name(name)?;
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "the name contains {c:?}; step names are ASCII letters, digits and `_`"
        ));
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("the name starts with a digit".to_owned());
    }
    Ok(())
}

/// Checks a participant name: SQS queue names and Lambda function names are ASCII letters,
/// digits, `-` and `_`, at most 80 (queues) or 64 (functions) characters.
pub fn check_participant(participant: &Participant) -> Result<(), String> {
    let (name, max) = match participant {
        Participant::Queue(name) => (name, 80),
        Participant::Lambda(name) => (name, 64),
    };
    if name.is_empty() || name.len() > max {
        return Err(format!("`{name}` must have 1 to {max} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "`{name}` contains {c:?}; use ASCII letters, digits, `-` and `_`"
        ));
    }
    Ok(())
}
