//! The audit log: one JSON line per decision, appended whole under an exclusive lock
//! and fsync'd before runc runs, so concurrent hardrun processes never interleave and
//! a started container always has its record.

mod record;
mod writer;

pub use record::{Decision, PolicyRef, Record};
pub use writer::{append_line, AuditError};
