//! "Did you mean …?": the closest known name to a misspelt one.

/// Levenshtein distance over characters.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Spelling differences that are not typos: case, `_`/`-` separators.
fn fold(s: &str) -> String {
    s.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo:
/// the same name in another case or separator style, or within a third of its length
/// in edits (at least one, at most three).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let folded = fold(word);
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let d = if fold(c) == folded { 0 } else { distance(&folded, &fold(c)) };
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_suggestions() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(closest("allw", ["allow", "forbidden", "onForbidden"]), Some("allow"));
        assert_eq!(closest("no_new_privileges", ["noNewPrivileges", "mode"]), Some("noNewPrivileges"));
        assert_eq!(closest("Forbidden", ["allow", "forbidden"]), Some("forbidden"));
        assert_eq!(closest("zzzzzz", ["allow", "forbidden"]), None);
        assert_eq!(closest("SYS_ADMN", ["SYS_ADMIN", "SYS_BOOT"]), Some("SYS_ADMIN"));
    }
}
