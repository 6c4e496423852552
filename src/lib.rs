//! hardrun: an OCI runtime wrapper that applies the node's security policies to each
//! container's spec, records the decision, and then execs the real runc.
//!
//! The crate is laid out along the create path (see `pipeline`): `runtime` speaks
//! runc's command line, `spec` edits config.json losslessly, `policy` selects and
//! merges, `enforce` turns merged settings into patches, `audit` records.

pub mod audit;
pub mod cli;
pub mod config;
pub mod context;
pub mod enforce;
#[doc(hidden)]
pub mod faults;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod hooks;
pub mod install;
pub mod pipeline;
pub mod policy;
pub mod record;
pub mod runtime;
pub mod sandbox;
pub mod spec;
pub mod timefmt;
pub mod userns;
pub mod verify;
pub mod yaml;

mod runtime_mode;

pub use runtime_mode::run as run_runtime;
