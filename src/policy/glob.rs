//! Globs for selectors: `*` and `?` stop at `/`, `**` does not. `\` escapes the next
//! character. Used for Kubernetes names and image references alike.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum GlobError {
    #[error("glob {0:?}: three or more `*` in a row")]
    TooManyStars(String),
    #[error("glob {0:?} ends with an unfinished escape `\\`")]
    TrailingEscape(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run without `/`.
    Star,
    /// `**`: any run.
    DoubleStar,
}

/// A compiled glob; keeps its source text for display and serialization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    toks: Vec<Tok>,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let mut toks = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => toks.push(Tok::Lit(chars.next().ok_or_else(|| GlobError::TrailingEscape(pattern.into()))?)),
                '?' => toks.push(Tok::One),
                '*' => {
                    let mut n = 1;
                    while chars.peek() == Some(&'*') {
                        chars.next();
                        n += 1;
                    }
                    match n {
                        1 => toks.push(Tok::Star),
                        2 => toks.push(Tok::DoubleStar),
                        _ => return Err(GlobError::TooManyStars(pattern.into())),
                    }
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Glob { source: pattern.to_owned(), toks })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the glob contains no wildcard (an exact name).
    pub fn is_literal(&self) -> bool {
        self.toks.iter().all(|t| matches!(t, Tok::Lit(_)))
    }

    pub fn matches(&self, text: &str) -> bool {
        // Most selector and mount globs start with a literal (`/etc/`, `docker.io/`):
        // a text without that prefix is decided without building the table.
        let prefix: String =
            self.toks.iter().map_while(|t| if let Tok::Lit(c) = t { Some(*c) } else { None }).collect();
        let Some(rest) = text.strip_prefix(prefix.as_str()) else { return false };
        let toks = &self.toks[prefix.chars().count()..];
        if toks.is_empty() {
            return rest.is_empty();
        }
        table_match(toks, rest)
    }
}

/// The classic O(n·m) table over two reused rows, small for names: one backtrack point
/// per star kind is not enough when `*` and `**` mix.
fn table_match(toks: &[Tok], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let m = text.len();
    let mut row = vec![false; m + 1];
    let mut next = vec![false; m + 1];
    row[0] = true;
    for tok in toks {
        next[0] = matches!(tok, Tok::Star | Tok::DoubleStar) && row[0];
        for j in 0..m {
            next[j + 1] = match tok {
                Tok::Lit(c) => row[j] && text[j] == *c,
                Tok::One => row[j] && text[j] != '/',
                Tok::Star => row[j + 1] || (next[j] && text[j] != '/'),
                Tok::DoubleStar => row[j + 1] || next[j],
            };
        }
        std::mem::swap(&mut row, &mut next);
    }
    row[m]
}

impl std::str::FromStr for Glob {
    type Err = GlobError;
    fn from_str(s: &str) -> Result<Self, GlobError> {
        Glob::new(s)
    }
}

// Ordered by source text, so globs can live in the merge's sets.
impl PartialOrd for Glob {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Glob {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.source.cmp(&other.source)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Glob::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn g(p: &str) -> Glob {
        Glob::new(p).unwrap()
    }

    #[test]
    fn star_stops_at_slash() {
        assert!(g("docker.io/library/*").matches("docker.io/library/busybox:1.36"));
        assert!(!g("docker.io/*").matches("docker.io/library/busybox"));
        assert!(g("docker.io/**").matches("docker.io/library/busybox"));
        assert!(g("**").matches(""));
        assert!(g("*").matches(""));
        assert!(!g("*").matches("a/b"));
        assert!(g("kube-*").matches("kube-system"));
        assert!(!g("kube-*").matches("default"));
        assert!(g("a?c").matches("abc") && !g("a?c").matches("a/c"));
        assert!(g("**/pause:*").matches("registry.k8s.io/pause:3.9"));
        assert!(g("*/**").matches("a/b/c") && !g("*/**").matches("abc"));
    }

    #[test]
    fn escapes_and_errors() {
        assert!(g(r"a\*b").matches("a*b") && !g(r"a\*b").matches("axb"));
        assert_eq!(Glob::new("a***"), Err(GlobError::TooManyStars("a***".into())));
        assert_eq!(Glob::new("a\\"), Err(GlobError::TrailingEscape("a\\".into())));
        assert!(g("exact").is_literal() && !g("e*").is_literal());
    }

    proptest! {
        #[test]
        fn literal_matches_itself(s in "[a-z/.:-]{0,20}") {
            prop_assert!(g(&s).matches(&s));
        }

        #[test]
        fn doublestar_matches_everything(s in "\\PC{0,30}") {
            prop_assert!(g("**").matches(&s));
        }

        #[test]
        fn prefix_fast_path_agrees_with_the_table(g in "[ab/]{0,3}(\\*|\\*\\*|\\?)?[ab/]{0,3}", s in "[ab/]{0,8}") {
            // The table alone, on the whole glob, is the reference.
            let glob = Glob::new(&g).unwrap();
            prop_assert_eq!(glob.matches(&s), table_match(&glob.toks, &s), "{} vs {}", g, s);
        }

        #[test]
        fn star_matches_exactly_slashless(s in "[a-c/]{0,12}") {
            prop_assert_eq!(g("*").matches(&s), !s.contains('/'));
        }
    }
}
