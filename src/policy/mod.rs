//! Policies: the document model, loading, selection and the monotone merge.
//! This module knows no effects: no spec edits, no I/O beyond reading policy files.

pub mod caps;
pub mod glob;
pub mod lint;
pub mod load;
pub mod merge;
pub mod model;
pub mod seccomp;
pub mod settings;
pub mod signature;
pub mod userns;

pub use caps::CapName;
pub use glob::Glob;
pub use load::{Exemption, LoadError, Origin, Policy, PolicySet};
pub use merge::{AllowList, DenyList, Mode, Require, Strictness};
pub use model::{PolicyDoc, PolicySpec, Selector, Settings};
pub use settings::*;
pub use userns::{EmptyDirStrategy, OnHostNamespace, RootfsStrategy, UserNamespaceSettings, UsernsMode};

use crate::context::{ContainerContext, ContainerType};

/// The policies and exemptions that apply to one container, and the merged settings.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    pub matched: Vec<&'a Policy>,
    pub exemptions: Vec<&'a Exemption>,
    pub settings: Settings,
}

impl Selection<'_> {
    /// The exemption that lifts `rule` for this container, if any.
    pub fn exemption_for(&self, rule: &str) -> Option<&Exemption> {
        self.exemptions.iter().copied().find(|e| e.spec.rules.iter().any(|g| g.matches(rule)))
    }
}

impl PolicySet {
    /// Every policy whose selector matches `ctx`, merged; a pod sandbox always gets
    /// at least [`Settings::sandbox_floor`].
    pub fn select(&self, ctx: &ContainerContext) -> Selection<'_> {
        let matched: Vec<&Policy> = self.policies.iter().filter(|p| p.spec.selector.matches(ctx)).collect();
        let exemptions = self.exemptions.iter().filter(|e| e.spec.selector.matches(ctx)).collect();
        let floor = (ctx.container_type == Some(ContainerType::Sandbox)).then(Settings::sandbox_floor);
        let settings = Settings::merge_all(matched.iter().map(|p| p.spec.settings()).chain(floor));
        Selection { matched, exemptions, settings }
    }
}

#[cfg(test)]
mod tests;
