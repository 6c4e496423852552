//! runc's side of hardrun: its command line, finding it, its log, and exec'ing it.

pub mod argv;
pub mod exec;
pub mod locate;
pub mod log;

pub use argv::{ArgvError, Command, CreateKind, ExecFlags, GlobalFlags, RuncArgs};
pub use exec::{exec_runc, ExecError};
pub use locate::{find_runc, LocateError};
pub use log::RuncLog;
