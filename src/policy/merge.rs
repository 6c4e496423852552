//! The one merge rule. Every setting is a value in a strictness order with a least
//! upper bound (`stricter`); policies merge setting by setting, so merging is
//! commutative and associative, and adding a policy can never make the result weaker.
//! A new control plugs in by implementing [`Strictness`] for its setting type and
//! listing its field in [`crate::policy::Settings`].

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A setting type's strictness order.
///
/// Laws (checked by property tests): `a.stricter(b) == b.stricter(a)`,
/// `a.stricter(b).at_least_as_strict_as(&a)`, and `x.stricter(x) == x`.
pub trait Strictness: Sized {
    /// The least value that is at least as strict as both.
    fn stricter(self, other: Self) -> Self;
    /// Whether `self` is at least as strict as `other`.
    fn at_least_as_strict_as(&self, other: &Self) -> bool;
}

/// Implements [`Strictness`] for a struct field by field.
#[macro_export]
macro_rules! strictness_by_fields {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        impl $crate::policy::merge::Strictness for $ty {
            fn stricter(self, other: Self) -> Self {
                $ty { $($field: self.$field.stricter(other.$field)),+ }
            }
            fn at_least_as_strict_as(&self, other: &Self) -> bool {
                true $(&& self.$field.at_least_as_strict_as(&other.$field))+
            }
        }
    };
}

/// Whether a policy changes containers or only records what it would change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Record the decision, leave config.json alone, never deny.
    #[default]
    Audit,
    Enforce,
}

impl Strictness for Mode {
    fn stricter(self, other: Self) -> Self {
        self.max(other)
    }
    fn at_least_as_strict_as(&self, other: &Self) -> bool {
        self >= other
    }
}

/// A requirement that is either on or not asked for; `false` never turns it off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Require(pub bool);

impl Strictness for Require {
    fn stricter(self, other: Self) -> Self {
        Require(self.0 || other.0)
    }
    fn at_least_as_strict_as(&self, other: &Self) -> bool {
        self.0 || !other.0
    }
}

/// An allow-list: absent means "anything", present means "only these". Merging
/// intersects, so the result allows only what every policy allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct AllowList<T: Ord>(pub Option<BTreeSet<T>>);

impl<T: Ord> Default for AllowList<T> {
    fn default() -> Self {
        AllowList(None)
    }
}

impl<T: Ord> AllowList<T> {
    pub fn only(items: impl IntoIterator<Item = T>) -> Self {
        AllowList(Some(items.into_iter().collect()))
    }
    pub fn allows(&self, item: &T) -> bool {
        self.0.as_ref().is_none_or(|s| s.contains(item))
    }
}

impl<T: Ord + Clone> Strictness for AllowList<T> {
    fn stricter(self, other: Self) -> Self {
        match (self.0, other.0) {
            (None, x) | (x, None) => AllowList(x),
            (Some(a), Some(b)) => AllowList(Some(a.intersection(&b).cloned().collect())),
        }
    }
    fn at_least_as_strict_as(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => a.is_subset(b),
        }
    }
}

/// A deny-list: merging unions, so the result denies what any policy denies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct DenyList<T: Ord>(pub BTreeSet<T>);

impl<T: Ord> Default for DenyList<T> {
    fn default() -> Self {
        DenyList(BTreeSet::new())
    }
}

impl<T: Ord + Clone> Strictness for DenyList<T> {
    fn stricter(mut self, other: Self) -> Self {
        self.0.extend(other.0);
        self
    }
    fn at_least_as_strict_as(&self, other: &Self) -> bool {
        self.0.is_superset(&other.0)
    }
}
