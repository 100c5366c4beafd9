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
        let digits_text = &rest[..digits];
        rest = &rest[digits..];
        let spaces = rest.chars().take_while(|c| *c == ' ').count();
        rest = &rest[spaces..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: u128 = match unit {
            "ms" if spaces == 0 => 1,
            "s" if spaces == 0 => 1_000,
            "m" if spaces == 0 => 60_000,
            "h" if spaces == 0 => 3_600_000,
            "d" if spaces == 0 => 86_400_000,
            "" => {
                return Err(format!(
                    "`{text}` needs a unit: write \"{digits_text}s\" for {digits_text} seconds \
                     (units: ms, s, m, h, d)"
                ));
            }
            other => {
                let advice = match meant_unit(other) {
                    Some(unit) => format!("write \"{digits_text}{unit}\""),
                    None => "use ms, s, m, h or d".to_owned(),
                };
                return Err(format!(
                    "`{other}` is not a unit in `{text}`; {advice}, without a space \
                     (units: ms, s, m, h, d, combined as in \"1h30m\")"
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

/// The unit a word for one stands for: `seconds` is `s`.
fn meant_unit(word: &str) -> Option<&'static str> {
    Some(match word.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => "ms",
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        _ => return None,
    })
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
        assert!(parse_seconds("30").unwrap_err().contains("write \"30s\""));
        assert!(
            parse_seconds("3w")
                .unwrap_err()
                .contains("`w` is not a unit")
        );
        assert!(
            parse_seconds("30 seconds")
                .unwrap_err()
                .contains("write \"30s\", without a space")
        );
        assert!(parse_seconds("5 m").unwrap_err().contains("write \"5m\""));
        assert!(parse_seconds("").unwrap_err().contains("empty"));
        assert!(
            parse_seconds("s")
                .unwrap_err()
                .contains("expected a number")
        );
    }
}
