//! The audit log: one JSON line per decision, appended whole under an exclusive lock
//! and fsync'd before runc runs, so concurrent hardrun processes never interleave and
//! a started container always has its record.

pub mod reader;
mod record;
pub(crate) use record::random_id;
pub mod review;
pub mod verify;
mod writer;

pub use record::{
    Decision, ExecInfo, ImageRef, PolicyRef, Record, RecordingEvent, SignatureVerdict, UsernsAction, UsernsEvent,
    API_VERSION, GENESIS,
};
pub use writer::{append, line_hash, read_tail, rotated_path, AuditError, Tail, MAX_AUDIT_LINE};
