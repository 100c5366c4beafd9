//! "Did you mean ...?": the known name closest to a misspelt one.

/// The candidate closest to `name`, if one is close enough to be what was meant: at most a
/// third of its letters edited (at least one), or sharing its first four letters.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edits(name, c), c))
        .filter(|(d, c)| *d <= limit || shares_stem(name, c))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// ` (did you mean `x`?)` for the closest candidate, or nothing.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(name, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

fn shares_stem(a: &str, b: &str) -> bool {
    a.len() >= 4 && b.len() >= 4 && a.get(..4) == b.get(..4)
}

/// The Levenshtein distance: insertions, deletions and substitutions.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let keys = ["name", "participant", "retry", "timeout", "interval"];
        assert_eq!(closest("partcipant", keys), Some("participant"));
        assert_eq!(closest("retries", keys), Some("retry"));
        assert_eq!(closest("intervl", keys), Some("interval"));
        assert_eq!(closest("owner", keys), None);
        assert_eq!(closest("factor", keys), None);
        assert_eq!(closest("relase", ["release", "reserve"]), Some("release"));
    }
}
