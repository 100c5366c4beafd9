//! Durations in human units: `"30s"`, `"5m"`, `"1h30m"`, `"2d"`, `"1500ms"`; ASL counts whole
//! seconds, so the total must be a whole number of seconds.

/// The duration in whole seconds, or a sentence saying what is wrong.
pub(crate) fn parse_seconds(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. \"30s\", \"5m\" or \"1h30m\"".to_owned());
    }
    let mut millis: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "expected a number in `{text}`; write e.g. \"30s\", \"5m\" or \"1h30m\""
            ));
        }
        let number: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("`{text}` needs a unit: ms, s, m, h or d")),
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}`; use ms, s, m, h or d"
                ));
            }
        };
        millis = number
            .checked_mul(scale)
            .and_then(|m| millis.checked_add(m))
            .ok_or_else(|| format!("`{text}` is too large"))?;
    }
    if !millis.is_multiple_of(1_000) {
        return Err(format!(
            "`{text}` is not a whole number of seconds, which is all Step Functions counts"
        ));
    }
    u64::try_from(millis / 1_000).map_err(|_| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_seconds;

    #[test]
    fn units_and_combinations() {
        assert_eq!(parse_seconds("30s"), Ok(30));
        assert_eq!(parse_seconds("5m"), Ok(300));
        assert_eq!(parse_seconds("1h30m"), Ok(5400));
        assert_eq!(parse_seconds("2d"), Ok(172_800));
        assert_eq!(parse_seconds("2000ms"), Ok(2));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(
            parse_seconds("1500ms")
                .unwrap_err()
                .contains("whole number of seconds")
        );
        assert!(parse_seconds("30").unwrap_err().contains("needs a unit"));
        assert!(
            parse_seconds("3w")
                .unwrap_err()
                .contains("unknown unit `w`")
        );
        assert!(parse_seconds("").unwrap_err().contains("empty"));
        assert!(
            parse_seconds("s")
                .unwrap_err()
                .contains("expected a number")
        );
    }
}
