//! Policies: the document model, loading, selection and the monotone merge.
//! This module knows no effects: no spec edits, no I/O beyond reading policy files.

pub mod caps;
pub mod glob;
pub mod load;
pub mod merge;
pub mod model;

pub use caps::CapName;
pub use glob::Glob;
pub use load::{LoadError, Origin, Policy, PolicySet};
pub use merge::{AllowList, DenyList, Mode, Require, Strictness};
pub use model::{CapabilitySettings, PolicyDoc, PolicySpec, Selector, Settings};

use crate::context::ContainerContext;

/// The policies that apply to one container and their merged settings.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    pub matched: Vec<&'a Policy>,
    pub settings: Settings,
}

impl PolicySet {
    /// Every policy whose selector matches `ctx`, merged.
    pub fn select(&self, ctx: &ContainerContext) -> Selection<'_> {
        let matched: Vec<&Policy> = self.policies.iter().filter(|p| p.spec.selector.matches(ctx)).collect();
        let settings = Settings::merge_all(matched.iter().map(|p| p.spec.settings()));
        Selection { matched, settings }
    }
}

#[cfg(test)]
mod tests;
