//! The template's writers: JSON without the comments, YAML with them.

use serde_json::Value;

use super::COMMENT_KEY;

/// The template as JSON, comments dropped.
pub fn to_json(template: &Value) -> String {
    fn strip(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| *k != COMMENT_KEY)
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string_pretty(&strip(template)).expect("templates serialise")
}

/// The template as YAML, with each [`COMMENT_KEY`] written as a `#` comment above its mapping.
/// Scalars are written as JSON (valid YAML), so nothing needs YAML's quoting rules.
pub fn to_yaml(template: &Value) -> String {
    let mut out = String::new();
    write_yaml(&mut out, template, 0);
    out
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        && !k.ends_with(':')
    {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.keys().any(|k| k != COMMENT_KEY),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

/// Whether `text` can be a literal block: several lines, none blank or with edge whitespace
/// that a block would lose, and only printable characters.
fn literal(text: &str) -> bool {
    text.contains('\n')
        && text
            .lines()
            .all(|l| !l.trim().is_empty() && !l.ends_with(' ') && !l.starts_with('\t'))
        && !text.starts_with(' ')
        && !text.chars().any(|c| c.is_control() && c != '\n')
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        other => other.to_string(),
    }
}

fn comment(out: &mut String, value: &Value, indent: usize) {
    if let Some(text) = value.get(COMMENT_KEY).and_then(Value::as_str) {
        for line in text.lines() {
            out.push_str(&format!("{:indent$}# {line}\n", ""));
        }
    }
}

/// Writes the entries of a mapping or the items of a sequence at `indent`.
fn write_yaml(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter().filter(|(k, _)| *k != COMMENT_KEY) {
                comment(out, v, indent);
                if is_block(v) {
                    out.push_str(&format!("{:indent$}{}:\n", "", key(k)));
                    let inner = if v.is_array() { indent } else { indent + 2 };
                    write_yaml(out, v, inner);
                } else if let Some(text) = v.as_str().filter(|t| literal(t)) {
                    // A multi-line string (the state machine's definition) as a literal block.
                    out.push_str(&format!("{:indent$}{}: |-\n", "", key(k)));
                    for line in text.lines() {
                        out.push_str(&format!("{:width$}{line}\n", "", width = indent + 2));
                    }
                } else {
                    out.push_str(&format!("{:indent$}{}: {}\n", "", key(k), scalar(v)));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                comment(out, item, indent);
                if is_block(item) {
                    // The item's first line goes after the dash, the rest below it.
                    let mut inner = String::new();
                    write_yaml(&mut inner, item, indent + 2);
                    let body = inner.trim_start();
                    out.push_str(&format!("{:indent$}- {body}", ""));
                } else {
                    out.push_str(&format!("{:indent$}- {}\n", "", scalar(item)));
                }
            }
        }
        other => out.push_str(&format!("{:indent$}{}\n", "", scalar(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_writes_multi_line_strings_as_literal_blocks() {
        let value = json!({ "A": { "B": "{\n  \"x\": 1\n}" }, "C": "one line" });
        assert_eq!(
            to_yaml(&value),
            "A:\n  B: |-\n    {\n      \"x\": 1\n    }\nC: \"one line\"\n"
        );
    }

    #[test]
    fn yaml_nests_sequences_of_mappings() {
        let value = json!({ "A": [{ "B": 1, "C": [2, 3] }, "x"], "D": {} });
        assert_eq!(
            to_yaml(&value),
            "A:\n- B: 1\n  C:\n  - 2\n  - 3\n- \"x\"\nD: {}\n"
        );
    }
}
