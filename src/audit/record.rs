//! The audit record, `apiVersion: hardrun.dev/audit/v1` (docs/audit.md documents
//! every field). One record is one line of the log.

use serde::{Deserialize, Serialize};

use crate::context::ContainerContext;
use crate::enforce::Finding;
use crate::policy::Mode;
use crate::spec::Patch;

pub const API_VERSION: &str = "hardrun.dev/audit/v1";
/// `prev` of the first record of a log that has no predecessor.
pub const GENESIS: &str = "genesis";

/// What happened to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Started unchanged (and lifecycle events, which decide nothing).
    Allowed,
    /// Started with the policy's changes.
    Mutated,
    /// Refused: runc was not run.
    Denied,
    /// Audit mode: started unchanged; the record says what enforce would have done.
    AuditOnly,
    /// A check could not be made and an explicit policy setting let it start anyway.
    FailedOpen,
}

/// A matched policy or exemption, named with the hash of its exact content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub name: String,
    pub hash: String,
    pub source: String,
}

impl PolicyRef {
    pub fn new(name: &str, hash: &str, source: &std::path::Path) -> Self {
        PolicyRef { name: name.to_owned(), hash: hash.to_owned(), source: source.display().to_string() }
    }
}

/// The image as the pod asked for it and as it was resolved (digest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    pub requested: Option<String>,
    pub digest: Option<String>,
}

/// The signature check's outcome (`crate::verify::gate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureVerdict {
    pub verified: bool,
    /// Key fingerprint or certificate identity.
    pub signer: Option<String>,
    pub cached: bool,
    pub message: Option<String>,
}

/// What an `exec` ran with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecInfo {
    /// The exec'd process's effective capabilities after the clamp (`None`: not
    /// known, the process comes from the container's own spec).
    pub effective_caps: Option<Vec<String>>,
    pub args: Vec<String>,
}

/// A seccomp profile recording's state (src/record/).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingEvent {
    /// The `kind: Recording` object.
    pub recording: String,
    /// The profile's name under `stateDir/recordings/`.
    pub output: String,
    /// `armed` (create), `not-started` (the recorder could not start; allowed),
    /// `written`, `write-failed`, `failed` (the recorder died or stalled), `abandoned`
    /// (runc never connected).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Calls the written profile allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub api_version: String,
    /// Position in the chain: one more than the previous record's.
    #[serde(default)]
    pub seq: u64,
    /// `sha256:<hex>` of the previous line's exact bytes (without its newline), or
    /// [`GENESIS`].
    #[serde(default)]
    pub prev: String,
    /// The previous line was torn (a crash mid-write); `prev` hashes its bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_torn: bool,
    /// Unique per record (random, 128 bits, hex).
    pub event_id: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    pub node: String,
    pub hardrun_version: String,
    /// The runc subcommand: create, run, restore, exec, start, delete.
    pub command: String,
    pub container_id: Option<String>,
    pub bundle: Option<String>,
    pub context: ContainerContext,
    #[serde(default)]
    pub image: ImageRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureVerdict>,
    pub policies: Vec<PolicyRef>,
    /// Exemptions that matched the container.
    #[serde(default)]
    pub exemptions: Vec<PolicyRef>,
    pub mode: Mode,
    pub decision: Decision,
    /// Why it was denied, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub findings: Vec<Finding>,
    /// The JSON-Patch applied (or, in audit mode, that would have been).
    pub patch: Patch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecInfo>,
    /// Seccomp profile recording: armed at create (command `create`), the recorder's
    /// outcome (command `record`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingEvent>,
    /// hardrun's own time for this decision, microseconds.
    pub duration_us: u64,
    /// A user namespace block allocated, joined, released or reclaimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<UsernsEvent>,
}

/// What happened to a block of host IDs (docs/userns.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsernsAction {
    Allocate,
    Join,
    Release,
    Reclaim,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsernsEvent {
    pub action: UsernsAction,
    /// The container that owns the block (the pod's sandbox, or the container).
    pub owner: String,
    pub host_start: u32,
    pub size: u32,
    /// The sandbox process whose namespace a join used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_pid: Option<u32>,
}

impl UsernsEvent {
    pub fn of(action: UsernsAction, a: &crate::userns::Allocation) -> Self {
        UsernsEvent { action, owner: a.owner.clone(), host_start: a.host_start, size: a.size, sandbox_pid: None }
    }
}

impl Record {
    pub fn new(command: &str) -> Self {
        Record {
            api_version: API_VERSION.to_owned(),
            seq: 0,
            prev: String::new(),
            after_torn: false,
            event_id: random_id(),
            time: crate::timefmt::now_rfc3339_nanos(),
            node: node_name(),
            hardrun_version: env!("CARGO_PKG_VERSION").to_owned(),
            command: command.to_owned(),
            container_id: None,
            bundle: None,
            context: ContainerContext::default(),
            image: ImageRef::default(),
            signature: None,
            policies: Vec::new(),
            exemptions: Vec::new(),
            mode: Mode::Enforce,
            decision: Decision::Denied,
            reason: None,
            findings: Vec::new(),
            patch: Patch::default(),
            exec: None,
            recording: None,
            duration_us: 0,
            userns: None,
        }
    }

    /// A lifecycle event (start, delete …): records, decides nothing.
    pub fn lifecycle(command: &str, container_id: Option<&str>) -> Self {
        let mut r = Record::new(command);
        r.container_id = container_id.map(str::to_owned);
        r.decision = Decision::Allowed;
        r
    }
}

/// 128 random bits from the kernel, hex (event ids, the recorder's socket token).
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `len` bytes into the buffer we own.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        // Not reachable on kernels containers run on; time and pid stay unique enough.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes[..8].copy_from_slice(&(t.as_nanos() as u64).to_le_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The node's name: the kernel's hostname (what the kubelet registers by default).
/// Read from /proc, not the environment, which containerd's caller controls.
fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}
