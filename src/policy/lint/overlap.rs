//! Whether two selectors can match the same container: for every field both list,
//! some pair of globs must match a common string. Glob intersection is decided
//! exactly, by searching the product of the two globs' automata.

use std::collections::{BTreeSet, HashSet, VecDeque};

use crate::context::ContainerType;
use crate::policy::{Glob, Selector};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    One,
    Star,
    DoubleStar,
}

/// The tokens of a glob, read as [`Glob::new`] reads them (the glob compiled, so its
/// text is well formed).
fn tokens(g: &Glob) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = g.as_str().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next().map(Tok::Lit)),
            '?' => out.push(Tok::One),
            '*' => {
                if chars.peek() == Some(&'*') {
                    chars.next();
                    out.push(Tok::DoubleStar);
                } else {
                    out.push(Tok::Star);
                }
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    out
}

/// The literal characters of a glob (what any string it matches must contain).
pub fn literal_chars(g: &Glob) -> impl Iterator<Item = char> {
    tokens(g).into_iter().filter_map(|t| match t {
        Tok::Lit(c) => Some(c),
        _ => None,
    })
}

/// Positions reachable from `i` without reading a character (past stars).
fn closure(toks: &[Tok], i: usize, out: &mut Vec<usize>) {
    let mut i = i;
    loop {
        out.push(i);
        match toks.get(i) {
            Some(Tok::Star | Tok::DoubleStar) => i += 1,
            _ => return,
        }
    }
}

/// Positions after reading `c` at position `i`.
fn step(toks: &[Tok], i: usize, c: char, out: &mut Vec<usize>) {
    match toks.get(i) {
        Some(Tok::Lit(x)) if *x == c => closure(toks, i + 1, out),
        Some(Tok::One) if c != '/' => closure(toks, i + 1, out),
        Some(Tok::Star) if c != '/' => closure(toks, i, out),
        Some(Tok::DoubleStar) => closure(toks, i, out),
        _ => {}
    }
}

/// A glob read once for many intersection tests.
#[derive(Debug, Clone)]
pub struct Prepared {
    glob: Glob,
    toks: Vec<Tok>,
    /// The literal text before the first wildcard, and after the last (reversed).
    prefix: Vec<char>,
    suffix: Vec<char>,
    literal: bool,
}

impl Prepared {
    pub fn new(g: &Glob) -> Self {
        let toks = tokens(g);
        let lit = |t: &Tok| if let Tok::Lit(c) = t { Some(*c) } else { None };
        let prefix: Vec<char> = toks.iter().map_while(lit).collect();
        let suffix: Vec<char> = toks.iter().rev().map_while(lit).collect();
        let literal = prefix.len() == toks.len();
        Prepared { glob: g.clone(), toks, prefix, suffix, literal }
    }
}

/// Whether some string matches both globs.
pub fn globs_intersect(a: &Glob, b: &Glob) -> bool {
    prepared_intersect(&Prepared::new(a), &Prepared::new(b))
}

fn prepared_intersect(a: &Prepared, b: &Prepared) -> bool {
    // The literal ends must agree where both have them: settles exact names and
    // `team-a-*` against `team-b-*` without a search.
    let agree = |x: &[char], y: &[char]| x.iter().zip(y).all(|(p, q)| p == q);
    if !agree(&a.prefix, &b.prefix) || !agree(&a.suffix, &b.suffix) {
        return false;
    }
    match (a.literal, b.literal) {
        (true, true) => return a.prefix == b.prefix,
        (true, false) => return b.glob.matches(&a.prefix.iter().collect::<String>()),
        (false, true) => return a.glob.matches(&b.prefix.iter().collect::<String>()),
        (false, false) => {}
    }
    let (ta, tb) = (&a.toks, &b.toks);
    // Characters the globs name, `/`, and one they do not name (every other
    // character behaves like it).
    let mut alphabet: BTreeSet<char> =
        ta.iter().chain(tb).filter_map(|t| if let Tok::Lit(c) = t { Some(*c) } else { None }).collect();
    alphabet.insert('/');
    let fresh = ('a'..='z').chain('0'..='9').find(|c| !alphabet.contains(c)).unwrap_or('\u{e000}');
    alphabet.insert(fresh);
    let mut start_a = Vec::new();
    let mut start_b = Vec::new();
    closure(ta, 0, &mut start_a);
    closure(tb, 0, &mut start_b);
    let mut seen = HashSet::new();
    let mut queue = VecDeque::new();
    for &i in &start_a {
        for &j in &start_b {
            if seen.insert((i, j)) {
                queue.push_back((i, j));
            }
        }
    }
    while let Some((i, j)) = queue.pop_front() {
        if i == ta.len() && j == tb.len() {
            return true;
        }
        for &c in &alphabet {
            let (mut na, mut nb) = (Vec::new(), Vec::new());
            step(ta, i, c, &mut na);
            if na.is_empty() {
                continue;
            }
            step(tb, j, c, &mut nb);
            for &x in &na {
                for &y in &nb {
                    if seen.insert((x, y)) {
                        queue.push_back((x, y));
                    }
                }
            }
        }
    }
    false
}

/// The container types a selector selects (absent: containers only).
pub fn types(s: &Selector) -> &[ContainerType] {
    s.container_types.as_deref().unwrap_or(&[ContainerType::Container])
}

/// A selector read once for many overlap tests.
#[derive(Debug, Clone)]
pub struct PreparedSelector {
    types: Vec<ContainerType>,
    fields: [Vec<Prepared>; 6],
}

impl PreparedSelector {
    pub fn new(s: &Selector) -> Self {
        let p = |g: &[Glob]| g.iter().map(Prepared::new).collect();
        PreparedSelector {
            types: types(s).to_vec(),
            fields: [
                p(&s.namespaces),
                p(&s.pods),
                p(&s.containers),
                p(&s.images),
                p(&s.runtime_classes),
                p(&s.containerd_namespaces),
            ],
        }
    }

    /// Whether some container can match both selectors.
    pub fn overlaps(&self, other: &PreparedSelector) -> bool {
        self.types.iter().any(|t| other.types.contains(t))
            && self.fields.iter().zip(&other.fields).all(|(a, b)| {
                a.is_empty() || b.is_empty() || a.iter().any(|x| b.iter().any(|y| prepared_intersect(x, y)))
            })
    }
}

/// Whether some container can match both selectors.
pub fn selectors_overlap(a: &Selector, b: &Selector) -> bool {
    PreparedSelector::new(a).overlaps(&PreparedSelector::new(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn g(s: &str) -> Glob {
        Glob::new(s).unwrap()
    }

    #[test]
    fn intersections() {
        assert!(globs_intersect(&g("team-*"), &g("*-a")));
        assert!(!globs_intersect(&g("team-*"), &g("prod-*")));
        assert!(globs_intersect(&g("docker.io/**"), &g("*/library/busybox")));
        assert!(!globs_intersect(&g("docker.io/*"), &g("docker.io/a/b")));
        assert!(globs_intersect(&g("a?c"), &g("abc")));
        assert!(!globs_intersect(&g("a?c"), &g("a/c")));
        assert!(globs_intersect(&g("**"), &g("")));
        assert!(!globs_intersect(&g("x"), &g("")));
        assert!(globs_intersect(&g(r"a\*"), &g("a*")));
        assert!(!globs_intersect(&g(r"a\*"), &g("ab")));
    }

    #[test]
    fn selectors() {
        let s = |y: &str| -> Selector { serde_yaml::from_str(y).unwrap() };
        assert!(selectors_overlap(&s("{}"), &s("namespaces: [a]")));
        assert!(!selectors_overlap(&s("namespaces: [a]"), &s("namespaces: [b]")));
        assert!(selectors_overlap(&s("namespaces: [a, b]"), &s("namespaces: [b*]")));
        assert!(!selectors_overlap(&s("containerTypes: [sandbox]"), &s("{}")));
        assert!(selectors_overlap(&s("containerTypes: [sandbox, container]"), &s("{}")));
        assert!(!selectors_overlap(&s("containerTypes: []"), &s("containerTypes: []")));
    }

    proptest! {
        /// Agrees with matching: a string both globs match proves an intersection.
        #[test]
        fn witnesses_agree(a in "[ab/*?]{0,5}", b in "[ab/*?]{0,5}", w in "[ab/c]{0,6}") {
            if let (Ok(ga), Ok(gb)) = (Glob::new(&a), Glob::new(&b)) {
                if ga.matches(&w) && gb.matches(&w) {
                    prop_assert!(globs_intersect(&ga, &gb));
                }
                prop_assert_eq!(globs_intersect(&ga, &gb), globs_intersect(&gb, &ga));
            }
        }
    }
}
