//! Per-pod user namespaces (docs/userns.md): the node's host ID range, the
//! allocation table under `stateDir/userns/`, and the rootfs ownership strategies.
//!
//! The table is one JSON file replaced atomically under a `flock`, so a crash at any
//! point leaves the old table or the new one. An allocation is owned by a pod's
//! sandbox container (or a container outside any pod) and is free again once that
//! container is gone from runc's state and no process runs in its IDs.

pub mod mountpoints;
mod range;
pub mod rootfs;
mod store;
mod table;

pub use range::{HostRange, RangeConfig, DEFAULT_IDS_PER_POD, DEFAULT_RANGE_SIZE, DEFAULT_RANGE_START};
pub use store::{process_start_time, AllocRequest, Allocated, HostLiveness, Store, StoreError};
pub use table::{valid_container_id, Allocation, Table, TableError};

/// runc's state directory when `--root` is not given.
pub const RUNC_DEFAULT_ROOT: &str = "/run/runc";
