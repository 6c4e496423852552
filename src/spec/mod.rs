//! config.json as a JSON value: bounded, symlink-refusing load; lossless edits as
//! JSON-Patch operations; atomic write that keeps the file's mode and owner.
//!
//! The spec is never deserialized into oci-spec's `Spec`, which drops fields it does
//! not know (newer runtime-spec fields, vendor extensions). Only the parts hardrun
//! injects are built with oci-spec's types.

mod file;
pub mod patch;
pub mod view;

pub use file::{SpecError, SpecFile, MAX_SPEC_BYTES};
pub use patch::{Patch, PatchError, PatchOp};
