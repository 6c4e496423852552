//! The normal form every profile is brought to, and the intersection of two of them.
//!
//! A profile is a default action, a set of extra architectures and, per system call
//! name, a [`Decision`]: one action always, or one action when any of several
//! argument conjunctions holds and another action otherwise. The intersection of two
//! profiles gives every call the stricter of the two actions it would get. Where the
//! exact result cannot be written as a libseccomp rule set (two comparisons on one
//! argument in one rule, or three different outcomes for one call), the result is
//! made stricter still, and the call's name is reported as approximated.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::policy::seccomp::Errno;

/// A system call name; the built-in profile uses static names without allocating.
pub type Name = Cow<'static, str>;

/// What the filter does with a call. Ordered by strictness: `Ord` is "at least as
/// strict as", a total order, so the intersection (`max`) is associative and
/// commutative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Log,
    /// A user-space agent decides (it may allow).
    Notify,
    /// A tracer decides; without one the call fails with ENOSYS.
    Trace(u32),
    Errno(u32),
    Trap,
    KillThread,
    KillProcess,
}

impl Action {
    /// How much the action restricts: every action of a higher rank denies at least
    /// what one of a lower rank denies.
    pub fn rank(self) -> u8 {
        match self {
            Action::Allow => 0,
            Action::Log => 1,
            Action::Notify => 2,
            Action::Trace(_) => 3,
            Action::Errno(_) => 4,
            Action::Trap => 5,
            Action::KillThread => 6,
            Action::KillProcess => 7,
        }
    }

    /// Within a rank, which value wins: ENOSYS first (so "not implemented" fallbacks
    /// such as glibc's clone3 → clone keep working; the call is denied either way),
    /// then the smaller number, and errno 0 (a faked success) last.
    fn tiebreak(self) -> u32 {
        match self {
            Action::Errno(38) => u32::MAX,
            Action::Errno(0) => 0,
            Action::Errno(n) | Action::Trace(n) => u32::MAX - 1 - n.min(u32::MAX - 2),
            _ => 0,
        }
    }

    pub fn allows(self) -> bool {
        matches!(self, Action::Allow | Action::Log)
    }

    pub fn errno(e: Errno) -> Action {
        Action::Errno(e.0)
    }
}

impl Ord for Action {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.rank(), self.tiebreak()).cmp(&(other.rank(), other.tiebreak()))
    }
}

impl PartialOrd for Action {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A comparison operator of libseccomp (`SCMP_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == value_two`
    MaskedEq,
}

/// One comparison of one argument (index 0..=5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cmp {
    pub index: u8,
    pub op: Op,
    pub value: u64,
    pub value_two: u64,
}

impl Cmp {
    pub const fn new(index: u8, op: Op, value: u64) -> Cmp {
        Cmp { index, op, value, value_two: 0 }
    }

    pub fn holds(&self, arg: u64) -> bool {
        let v = self.value;
        match self.op {
            Op::Ne => arg != v,
            Op::Lt => arg < v,
            Op::Le => arg <= v,
            Op::Eq => arg == v,
            Op::Ge => arg >= v,
            Op::Gt => arg > v,
            Op::MaskedEq => arg & v == self.value_two,
        }
    }

    /// An upper bound `arg < n` (`None`: not an upper bound, or `<= u64::MAX`).
    fn below(&self) -> Option<u64> {
        match self.op {
            Op::Lt => Some(self.value),
            Op::Le => self.value.checked_add(1),
            _ => None,
        }
    }

    /// A lower bound `arg > n`.
    fn above(&self) -> Option<u64> {
        match self.op {
            Op::Gt => Some(self.value),
            Op::Ge => self.value.checked_sub(1),
            _ => None,
        }
    }
}

/// Comparisons that must all hold; at most one per argument (libseccomp refuses
/// two in one rule), sorted by argument. Empty: always true.
pub type Conj = Vec<Cmp>;

/// The conjunction of two conjunctions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum And {
    Exact(Conj),
    /// Never true.
    Never,
    /// Not writable as one rule; `wider` holds wherever both do (and more).
    Wider(Conj),
}

/// Two comparisons on the same argument as one, when that is exact.
fn and_same_arg(a: Cmp, b: Cmp) -> Option<Option<Cmp>> {
    if a == b {
        return Some(Some(a));
    }
    // An equality pins the value: the other comparison is then just true or false.
    for (eq, other) in [(a, b), (b, a)] {
        if eq.op == Op::Eq {
            return Some(other.holds(eq.value).then_some(eq));
        }
    }
    if a.op == Op::MaskedEq && b.op == Op::MaskedEq && a.value == b.value {
        return Some(None); // same mask, different expected values (a != b)
    }
    if let (Some(x), Some(y)) = (a.below(), b.below()) {
        return Some(Some(Cmp::new(a.index, Op::Lt, x.min(y))));
    }
    if let (Some(x), Some(y)) = (a.above(), b.above()) {
        return Some(Some(Cmp::new(a.index, Op::Gt, x.max(y))));
    }
    None
}

pub fn and(a: &[Cmp], b: &[Cmp]) -> And {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut exact = true;
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.index == y.index => {
                match and_same_arg(*x, *y) {
                    Some(Some(c)) => out.push(c),
                    Some(None) => return And::Never,
                    None => {
                        // Either comparison alone is wider; the smaller keeps the
                        // result independent of the operands' order.
                        exact = false;
                        out.push((*x).min(*y));
                    }
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.index < y.index => {
                out.push(*x);
                i += 1;
            }
            (Some(_), Some(y)) | (None, Some(y)) => {
                out.push(*y);
                j += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    if exact {
        And::Exact(out)
    } else {
        And::Wider(out)
    }
}

/// Whether every comparison of `c` holds for `args`.
pub fn conj_holds(c: &[Cmp], args: &[u64; 6]) -> bool {
    c.iter().all(|cmp| cmp.holds(args[usize::from(cmp.index)]))
}

/// What the filter does with one system call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Decision {
    Always(Action),
    /// `then` when any conjunction of `when` holds, else `otherwise`. Normal form:
    /// `when` non-empty, sorted, without duplicates or an empty conjunction, and
    /// `then != otherwise`.
    Cond {
        when: Vec<Conj>,
        then: Action,
        otherwise: Action,
    },
}

/// Past this many conjunctions for one call the intersection gives up on precision.
pub const MAX_CONJUNCTIONS: usize = 256;

impl Decision {
    pub fn cond(mut when: Vec<Conj>, then: Action, otherwise: Action) -> Decision {
        when.sort();
        when.dedup();
        if when.is_empty() {
            Decision::Always(otherwise)
        } else if then == otherwise || when.iter().any(Vec::is_empty) {
            Decision::Always(then)
        } else {
            Decision::Cond { when, then, otherwise }
        }
    }

    pub fn eval(&self, args: &[u64; 6]) -> Action {
        match self {
            Decision::Always(a) => *a,
            Decision::Cond { when, then, otherwise } => {
                if when.iter().any(|c| conj_holds(c, args)) {
                    *then
                } else {
                    *otherwise
                }
            }
        }
    }

    /// The strictest action the call can get.
    pub fn strictest(&self) -> Action {
        match self {
            Decision::Always(a) => *a,
            Decision::Cond { then, otherwise, .. } => (*then).max(*otherwise),
        }
    }

    /// The intersection; `true` when the result had to be made stricter than exact.
    pub fn intersect(&self, other: &Decision) -> (Decision, bool) {
        if self == other {
            return (self.clone(), false);
        }
        match (self, other) {
            (Decision::Always(a), Decision::Always(b)) => (Decision::Always((*a).max(*b)), false),
            (Decision::Always(a), Decision::Cond { when, then, otherwise })
            | (Decision::Cond { when, then, otherwise }, Decision::Always(a)) => {
                (Decision::cond(when.clone(), (*a).max(*then), (*a).max(*otherwise)), false)
            }
            (
                Decision::Cond { when: w1, then: t1, otherwise: o1 },
                Decision::Cond { when: w2, then: t2, otherwise: o2 },
            ) => intersect_cond((w1, *t1, *o1), (w2, *t2, *o2)),
        }
    }
}

type CondRef<'a> = (&'a Vec<Conj>, Action, Action);

/// Four regions (in both, only in one, only in the other, in neither), each with the
/// stricter action; exact when the regions collapse to two that one `when` can name.
fn intersect_cond((w1, t1, o1): CondRef<'_>, (w2, t2, o2): CondRef<'_>) -> (Decision, bool) {
    let (r11, r10, r01, r00) = (t1.max(t2), t1.max(o2), o1.max(t2), o1.max(o2));
    if r11 == r10 && r01 == r00 {
        return (Decision::cond(w1.clone(), r11, r00), false);
    }
    if r11 == r01 && r10 == r00 {
        return (Decision::cond(w2.clone(), r11, r00), false);
    }
    if r11 == r10 && r10 == r01 {
        let mut union = w1.clone();
        union.extend(w2.iter().cloned());
        return (Decision::cond(union, r11, r00), false);
    }
    // In both vs the rest; the rest gets the strictest of its three actions.
    let rest = r10.max(r01).max(r00);
    let (when, approx) = and_all(w1, w2, r11, rest);
    (Decision::cond(when, r11, rest), approx || rest != r10 || rest != r01 || rest != r00)
}

/// `w1 ∧ w2` as a list of conjunctions for a region that gets `then` (else
/// `otherwise`): a conjunction that cannot be written exactly is left out when that
/// is stricter (`then` weaker than `otherwise`), widened when widening is.
fn and_all(w1: &[Conj], w2: &[Conj], then: Action, otherwise: Action) -> (Vec<Conj>, bool) {
    let shrink = then <= otherwise;
    let mut out = Vec::new();
    let mut left_out: Vec<(&Conj, &Conj)> = Vec::new();
    let mut approx = false;
    for a in w1 {
        for b in w2 {
            match and(a, b) {
                And::Exact(c) => out.push(c),
                And::Never => {}
                And::Wider(_) if shrink => left_out.push((a, b)),
                And::Wider(c) => {
                    approx = true;
                    out.push(c);
                }
            }
            if out.len() > MAX_CONJUNCTIONS {
                // Too many rules to be worth it: the stricter action everywhere.
                return (if shrink { Vec::new() } else { vec![Vec::new()] }, true);
            }
        }
    }
    // A left-out pair loses nothing when a kept conjunction already covers one side
    // of it (as when a profile meets itself).
    let covers = |c: &Conj, x: &Conj| c.iter().all(|cmp| x.contains(cmp));
    approx |= left_out.iter().any(|(a, b)| !out.iter().any(|c| covers(c, a) || covers(c, b)));
    (out, approx)
}

/// A profile in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub default: Action,
    /// Extra architectures (`SCMP_ARCH_*`); the native one is always in a filter, so
    /// empty means native only.
    pub arches: BTreeSet<String>,
    /// Names not listed get `default`.
    pub syscalls: BTreeMap<Name, Decision>,
    /// `SECCOMP_FILTER_FLAG_*`.
    pub flags: BTreeSet<String>,
    /// `SCMP_ACT_NOTIFY`'s agent socket and its opaque metadata.
    pub listener: Option<(String, Option<String>)>,
}

/// Filter flags that weaken a filter: kept only when every profile has them.
pub const WEAKENING_FLAGS: &[&str] = &["SECCOMP_FILTER_FLAG_SPEC_ALLOW"];

/// The result of intersecting profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intersection {
    pub profile: Profile,
    /// Calls whose result had to be made stricter than the exact intersection.
    pub approximated: BTreeSet<String>,
}

/// Two profiles ask for different notification agents: one filter has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConflict(pub String, pub String);

impl Profile {
    /// Allows everything: the identity of the intersection.
    pub fn allow_all() -> Profile {
        Profile {
            default: Action::Allow,
            arches: BTreeSet::new(),
            syscalls: BTreeMap::new(),
            flags: BTreeSet::new(),
            listener: None,
        }
    }

    pub fn decision(&self, name: &str) -> Decision {
        self.syscalls.get(name).cloned().unwrap_or(Decision::Always(self.default))
    }

    pub fn eval(&self, name: &str, args: &[u64; 6]) -> Action {
        self.syscalls.get(name).map_or(self.default, |d| d.eval(args))
    }

    /// Sets a call's decision, dropping it when it is the default.
    pub fn set(&mut self, name: Name, d: Decision) {
        if d == Decision::Always(self.default) {
            self.syscalls.remove(&name);
        } else {
            self.syscalls.insert(name, d);
        }
    }

    /// The intersection: every call gets the stricter of what each profile gives it.
    pub fn intersect(&self, other: &Profile) -> Result<Intersection, ListenerConflict> {
        let listener = match (&self.listener, &other.listener) {
            (Some(a), Some(b)) if a != b => return Err(ListenerConflict(a.0.clone(), b.0.clone())),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let mut flags: BTreeSet<String> = self.flags.union(&other.flags).cloned().collect();
        for f in WEAKENING_FLAGS {
            if !(self.flags.contains(*f) && other.flags.contains(*f)) {
                flags.remove(*f);
            }
        }
        let mut out = Profile {
            default: self.default.max(other.default),
            arches: self.arches.intersection(&other.arches).cloned().collect(),
            syscalls: BTreeMap::new(),
            flags,
            listener,
        };
        // Both maps are sorted: one merge pass, and a sorted collect (bulk build).
        let mut approximated = BTreeSet::new();
        let (mut a, mut b) = (self.syscalls.iter().peekable(), other.syscalls.iter().peekable());
        let mut merged: Vec<(Name, Decision)> = Vec::with_capacity(self.syscalls.len().max(other.syscalls.len()));
        loop {
            let (name, d, approx) = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some((n, x)), Some((m, y))) if n == m => {
                    let (d, approx) = x.intersect(y);
                    let name = (*n).clone();
                    a.next();
                    b.next();
                    (name, d, approx)
                }
                (Some((n, x)), Some((m, _))) if n < m => {
                    let (d, approx) = x.intersect(&Decision::Always(other.default));
                    let name = (*n).clone();
                    a.next();
                    (name, d, approx)
                }
                (Some((n, x)), None) => {
                    let (d, approx) = x.intersect(&Decision::Always(other.default));
                    let name = (*n).clone();
                    a.next();
                    (name, d, approx)
                }
                (_, Some((m, y))) => {
                    let (d, approx) = Decision::Always(self.default).intersect(y);
                    let name = (*m).clone();
                    b.next();
                    (name, d, approx)
                }
            };
            if approx {
                approximated.insert(name.to_string());
            }
            if d != Decision::Always(out.default) {
                merged.push((name, d));
            }
        }
        out.syscalls = merged.into_iter().collect();
        Ok(Intersection { profile: out, approximated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALLOW: Action = Action::Allow;
    const EPERM: Action = Action::Errno(1);
    const ENOSYS: Action = Action::Errno(38);

    fn eq(i: u8, v: u64) -> Cmp {
        Cmp::new(i, Op::Eq, v)
    }

    #[test]
    fn action_order() {
        assert!(Action::KillProcess > Action::KillThread && Action::KillThread > Action::Trap);
        assert!(Action::Trap > EPERM && EPERM > Action::Trace(1) && Action::Trace(1) > Action::Notify);
        assert!(Action::Notify > Action::Log && Action::Log > ALLOW);
        assert_eq!(EPERM.max(ENOSYS), ENOSYS);
        assert_eq!(Action::Errno(13).max(EPERM), EPERM);
        assert_eq!(Action::Errno(4095).max(Action::Errno(4094)), Action::Errno(4094));
        assert_eq!(Action::Errno(0).max(Action::Errno(4095)), Action::Errno(4095));
        assert!(Action::Errno(0) > Action::Trace(0));
    }

    #[test]
    fn same_argument_conjunctions() {
        let lt = |v| Cmp::new(0, Op::Lt, v);
        assert_eq!(and(&[eq(0, 5)], &[lt(10)]), And::Exact(vec![eq(0, 5)]));
        assert_eq!(and(&[eq(0, 5)], &[lt(3)]), And::Never);
        assert_eq!(and(&[eq(0, 5)], &[eq(0, 6)]), And::Never);
        assert_eq!(and(&[lt(10)], &[Cmp::new(0, Op::Le, 4)]), And::Exact(vec![lt(5)]));
        assert_eq!(
            and(&[Cmp::new(0, Op::Gt, 10)], &[Cmp::new(0, Op::Ge, 4)]),
            And::Exact(vec![Cmp::new(0, Op::Gt, 10)])
        );
        let m = |v2| Cmp { index: 0, op: Op::MaskedEq, value: 0xff, value_two: v2 };
        assert_eq!(and(&[m(1)], &[m(2)]), And::Never);
        assert_eq!(and(&[lt(10)], &[Cmp::new(0, Op::Ne, 4)]), And::Wider(vec![Cmp::new(0, Op::Ne, 4)]));
        assert_eq!(and(&[Cmp::new(0, Op::Ne, 4)], &[lt(10)]), and(&[lt(10)], &[Cmp::new(0, Op::Ne, 4)]));
        assert_eq!(and(&[eq(0, 1)], &[eq(2, 3)]), And::Exact(vec![eq(0, 1), eq(2, 3)]));
        assert_eq!(and(&[eq(2, 1)], &[eq(0, 3), eq(2, 1)]), And::Exact(vec![eq(0, 3), eq(2, 1)]));
    }

    #[test]
    fn allow_lists_intersect_their_conditions() {
        let a = Decision::cond(vec![vec![eq(0, 1)], vec![eq(0, 2)]], ALLOW, EPERM);
        let b = Decision::cond(vec![vec![eq(0, 2)], vec![eq(1, 7)]], ALLOW, EPERM);
        let (d, approx) = a.intersect(&b);
        assert!(!approx);
        assert_eq!(
            d,
            Decision::cond(vec![vec![eq(0, 1), eq(1, 7)], vec![eq(0, 2)], vec![eq(0, 2), eq(1, 7)]], ALLOW, EPERM)
        );
        assert_eq!(d.eval(&[2, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(d.eval(&[1, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(d.eval(&[1, 7, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn unrepresentable_results_are_stricter() {
        // Allowed below 38 by one, denied for 16 by the other (a blocklist): the exact
        // result needs `a0 < 38 && a0 != 16` in one rule, which libseccomp refuses.
        let allow = Decision::cond(vec![vec![Cmp::new(0, Op::Lt, 38)]], ALLOW, EPERM);
        let block = Decision::cond(vec![vec![eq(0, 16)]], EPERM, ALLOW);
        let (d, approx) = allow.intersect(&block);
        assert!(approx);
        assert_eq!(d, Decision::Always(EPERM));
    }

    fn arb_action() -> impl Strategy<Value = Action> {
        prop_oneof![
            Just(ALLOW),
            Just(Action::Log),
            Just(Action::Notify),
            (1u32..3).prop_map(Action::Trace),
            prop_oneof![Just(1u32), Just(13), Just(38)].prop_map(Action::Errno),
            Just(Action::Trap),
            Just(Action::KillProcess),
        ]
    }

    fn arb_cmp() -> impl Strategy<Value = Cmp> {
        let op = prop_oneof![
            Just(Op::Ne),
            Just(Op::Lt),
            Just(Op::Le),
            Just(Op::Eq),
            Just(Op::Ge),
            Just(Op::Gt),
            Just(Op::MaskedEq)
        ];
        (0u8..2, op, 0u64..6, 0u64..6).prop_map(|(index, op, value, value_two)| Cmp { index, op, value, value_two })
    }

    fn arb_conj() -> impl Strategy<Value = Conj> {
        prop::collection::vec(arb_cmp(), 1..3).prop_map(|mut v| {
            v.sort_by_key(|c| c.index);
            v.dedup_by_key(|c| c.index);
            v
        })
    }

    fn arb_decision() -> impl Strategy<Value = Decision> {
        prop_oneof![
            arb_action().prop_map(Decision::Always),
            (prop::collection::vec(arb_conj(), 1..4), arb_action(), arb_action())
                .prop_map(|(w, t, o)| Decision::cond(w, t, o)),
        ]
    }

    fn arb_profile() -> impl Strategy<Value = Profile> {
        let names = prop::sample::select(vec!["read", "socket", "clone", "mount"]);
        (arb_action(), prop::collection::btree_map(names, arb_decision(), 0..4), any::<bool>()).prop_map(
            |(default, calls, x86)| {
                let mut p = Profile { default, ..Profile::allow_all() };
                if x86 {
                    p.arches.insert("SCMP_ARCH_X86".into());
                }
                for (n, d) in calls {
                    p.set(Cow::Borrowed(n), d);
                }
                p
            },
        )
    }

    proptest! {
        #[test]
        fn intersection_is_commutative_and_never_weaker(a in arb_profile(), b in arb_profile(), args in prop::array::uniform6(0u64..7)) {
            let ab = a.intersect(&b).unwrap();
            let ba = b.intersect(&a).unwrap();
            prop_assert_eq!(&ab, &ba);
            for name in ["read", "socket", "clone", "mount", "other"] {
                let got = ab.profile.eval(name, &args);
                let (x, y) = (a.eval(name, &args), b.eval(name, &args));
                prop_assert!(got.rank() >= x.rank() && got.rank() >= y.rank(), "{name}: {got:?} weaker than {x:?}/{y:?}");
                // Exact unless reported.
                if !ab.approximated.contains(name) {
                    prop_assert_eq!(got, x.max(y), "{}", name);
                }
            }
            prop_assert!(ab.profile.arches.is_subset(&a.arches) && ab.profile.arches.is_subset(&b.arches));
        }

        #[test]
        fn intersection_is_idempotent_and_has_an_identity(a in arb_profile(), args in prop::array::uniform6(0u64..7)) {
            let aa = a.intersect(&a).unwrap().profile;
            let ai = a.intersect(&Profile::allow_all()).unwrap();
            for name in ["read", "socket", "clone", "mount", "other"] {
                prop_assert_eq!(aa.eval(name, &args), a.eval(name, &args));
                prop_assert_eq!(ai.profile.eval(name, &args), a.eval(name, &args));
            }
            prop_assert!(ai.approximated.is_empty());
        }
    }
}
