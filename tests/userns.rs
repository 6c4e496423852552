//! Per-pod user namespaces (issue #4) against the real runc: a sandbox-like
//! container gets a block of host IDs and a new user namespace, app containers of
//! the same pod join it, and what runs is checked from inside (/proc/self/uid_map)
//! and from outside (the container process's /proc/<pid>/status).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{log_lines, proc_status, Bundle, Env, Outcome};
use serde_json::{json, Value};

const BLOCK: u32 = 65536;

/// Each test's own range: reclaiming checks that no process on the host runs in a
/// block, so tests running at once must not share blocks.
const fn start_of(slot: u32) -> u32 {
    1_500_000_000 + slot * 16 * BLOCK
}

// ---------------------------------------------------------------------------------
// helpers

/// A node whose range holds `blocks` blocks from [`START`], with one policy giving
/// pods a user namespace with rootfs strategy `rootfs` (plus `extra` spec lines).
fn env(slot: u32, blocks: u32, rootfs: &str, extra: &str) -> Env {
    let env = Env::new();
    let mut config = env.config_yaml(common::RUNC);
    let start = start_of(slot);
    config.push_str(&format!("userNamespaces:\n  hostRange: {{start: {start}, size: {}}}\n", blocks * BLOCK));
    env.write_config(&config);
    env.write_policy(
        "userns.yaml",
        &format!(
            "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: pods\nspec:\n  match:\n    \
             containerTypes: [sandbox, container]\n  userNamespace:\n    mode: pod\n    rootfs: {rootfs}\n{extra}"
        ),
    );
    env
}

/// A busybox bundle a mapped root can use: the mount points an image has, and the
/// bundle directory searchable by others (as containerd makes it, 0711).
fn bundle(args: &[&str]) -> Bundle {
    let b = Bundle::new(args);
    for dir in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(b.path().join("rootfs").join(dir)).unwrap();
    }
    std::fs::set_permissions(b.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    b
}

/// A pod sandbox bundle (CRI annotations) that sleeps.
fn sandbox_bundle(id: &str) -> Bundle {
    let b = bundle(&["sleep", "60"]);
    b.set_annotations(&[("io.kubernetes.cri.container-type", "sandbox"), ("io.kubernetes.cri.sandbox-id", id)]);
    b
}

/// An app container of sandbox `sb` (whose init is `pid`), sharing its network and
/// ipc namespaces by path as containerd does.
fn app_bundle(sb: &str, pid: u32, args: &[&str]) -> Bundle {
    let b = bundle(args);
    b.set_annotations(&[("io.kubernetes.cri.container-type", "container"), ("io.kubernetes.cri.sandbox-id", sb)]);
    b.edit(|s| {
        s["linux"]["namespaces"] = json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "uts"},
            {"type": "network", "path": format!("/proc/{pid}/ns/net")},
            {"type": "ipc", "path": format!("/proc/{pid}/ns/ipc")},
        ]);
    });
    b
}

/// `hardrun create` + `hardrun start` of a detached container; returns its init pid.
fn start(env: &Env, b: &Bundle, id: &str) -> u32 {
    let log = env.file("runc-log");
    let (out, _) = env.hardrun().log(&log).args(["create", "--bundle"]).arg(b.path()).arg(id).run_to_files();
    assert_eq!(out.code, 0, "create {id}: {out:?}\nlog: {:?}\naudit: {}", log_lines(&log), env.audit_text());
    let out = env.hardrun().args(["start", id]).output();
    assert_eq!(out.code, 0, "start {id}: {out:?}");
    env.wait_status(id, "running")["pid"].as_u64().unwrap() as u32
}

/// Creates `b` through hardrun and expects a denial; returns the runc log's message.
fn denied(env: &Env, b: &Bundle, id: &str) -> String {
    let log = env.file("runc-log");
    let (out, _) = env.hardrun().log(&log).args(["create", "--bundle"]).arg(b.path()).arg(id).run_to_files();
    assert_eq!(out.code, 1, "create {id} should be refused: {out:?}");
    assert!(env.state(id).is_none(), "no container {id}");
    let lines = log_lines(&log);
    lines.last().and_then(|l| l["msg"].as_str()).unwrap_or_else(|| panic!("no log line: {lines:?}")).to_owned()
}

/// Runs `b` in the foreground through hardrun.
fn run(env: &Env, b: &Bundle, id: &str) -> (Outcome, PathBuf) {
    let log = env.file("runc-log");
    (env.hardrun().log(&log).args(["run", "--bundle"]).arg(b.path()).arg(id).output(), log)
}

fn run_ok(env: &Env, b: &Bundle, id: &str) -> String {
    let (out, log) = run(env, b, id);
    assert_eq!(out.code, 0, "run {id}: {out:?}\nlog: {:?}\naudit: {}", log_lines(&log), env.audit_text());
    out.stdout
}

/// A uid_map's lines, whitespace normalised.
fn uid_map_of(text: &str) -> Vec<String> {
    text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

fn proc_uid_map(pid: u32) -> Vec<String> {
    uid_map_of(&std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap())
}

/// The real uid of a process, from outside the container.
fn host_uid(pid: u32) -> u32 {
    let status = proc_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap());
    status["Uid"].split_whitespace().next().unwrap().parse().unwrap()
}

fn table(env: &Env) -> Value {
    serde_json::from_slice(&std::fs::read(env.state_dir.join("userns/allocations.json")).unwrap()).unwrap()
}

fn userns_events(env: &Env, action: &str) -> Vec<Value> {
    env.audit_records().into_iter().filter(|r| r["userns"]["action"] == action).collect()
}

fn block_line(start: u32) -> Vec<String> {
    vec![format!("0 {start} {BLOCK}")]
}

// ---------------------------------------------------------------------------------
// tests

#[test]
fn pod_containers_share_one_mapping_and_root_is_unprivileged_on_the_host() {
    if !common::prerequisites_met() {
        return;
    }
    const START: u32 = start_of(1);
    let env = env(1, 4, "read-only", "");
    let sb = env.id("sb");
    let sb_pid = start(&env, &sandbox_bundle(&sb), &sb);
    assert_eq!(proc_uid_map(sb_pid), block_line(START));
    assert_eq!(host_uid(sb_pid), START, "the sandbox's root is host uid {START}");

    let shown = run_ok(&env, &app_bundle(&sb, sb_pid, &["sh", "-c", "cat /proc/self/uid_map; id -u"]), &env.id("app"));
    let mut lines = uid_map_of(&shown);
    assert_eq!(lines.pop().as_deref(), Some("0"), "root inside: {shown}");
    assert_eq!(lines, block_line(START), "the app container sees the pod's mapping");

    let app = env.id("app2");
    let app_pid = start(&env, &app_bundle(&sb, sb_pid, &["sleep", "60"]), &app);
    assert_eq!(host_uid(app_pid), START);
    let ns = |pid: u32| std::fs::metadata(format!("/proc/{pid}/ns/user")).unwrap().ino();
    assert_eq!(ns(app_pid), ns(sb_pid), "the same user namespace, joined by path");
    assert_ne!(ns(app_pid), std::fs::metadata("/proc/self/ns/user").unwrap().ino());

    let joined = env.audit_record(&app);
    assert_eq!(joined["userns"]["action"], "join");
    assert_eq!(joined["userns"]["owner"], sb.as_str());
    assert_eq!(joined["userns"]["sandboxPid"], sb_pid);
    assert_eq!(env.audit_record(&sb)["userns"]["action"], "allocate");
    let rules: Vec<&str> = joined["findings"].as_array().unwrap().iter().filter_map(|f| f["rule"].as_str()).collect();
    assert!(rules.contains(&"userns.joined"), "{joined}");
    assert!(!rules.contains(&"userns.sysfs"), "the pod's user namespace owns its network namespace: {rules:?}");
}

#[test]
fn two_pods_get_disjoint_blocks_and_standalone_containers_their_own() {
    if !common::prerequisites_met() {
        return;
    }
    const START: u32 = start_of(2);
    let env = env(2, 4, "read-only", "");
    let (a, b) = (env.id("sba"), env.id("sbb"));
    let pa = start(&env, &sandbox_bundle(&a), &a);
    let pb = start(&env, &sandbox_bundle(&b), &b);
    assert_eq!(proc_uid_map(pa), block_line(START));
    assert_eq!(proc_uid_map(pb), block_line(START + BLOCK));
    let solo = run_ok(&env, &bundle(&["cat", "/proc/self/uid_map"]), &env.id("solo"));
    assert_eq!(uid_map_of(&solo), block_line(START + 2 * BLOCK), "a container outside any pod gets its own block");
    assert_eq!(table(&env)["allocations"].as_array().unwrap().len(), 3);
}

#[test]
fn exhausted_range_denies_and_deleting_the_sandbox_frees_its_block() {
    if !common::prerequisites_met() {
        return;
    }
    const START: u32 = start_of(3);
    let env = env(3, 1, "read-only", "");
    let first = env.id("sb1");
    start(&env, &sandbox_bundle(&first), &first);
    let second = env.id("sb2");
    let msg = denied(&env, &sandbox_bundle(&second), &second);
    assert!(msg.contains("[userns.unavailable]") && msg.contains("no free block"), "{msg}");
    assert!(msg.contains(&format!("{START}+{BLOCK}")), "names the range: {msg}");

    let out = env.hardrun().args(["delete", "-f", &first]).output();
    assert_eq!(out.code, 0, "{out:?}");
    let released = userns_events(&env, "release");
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(released[0]["containerId"], first.as_str());
    assert_eq!(released[0]["userns"]["hostStart"], START);

    let pid = start(&env, &sandbox_bundle(&second), &second);
    assert_eq!(proc_uid_map(pid), block_line(START), "the freed block is allocated again");
    let owners: Vec<Value> =
        table(&env)["allocations"].as_array().unwrap().iter().map(|a| a["owner"].clone()).collect();
    assert_eq!(owners, [json!(second)]);
    assert!(userns_events(&env, "reclaim").is_empty(), "a released block is dropped, not reclaimed");
}

#[test]
fn a_missed_delete_is_reclaimed_on_the_next_allocation() {
    if !common::prerequisites_met() {
        return;
    }
    const START: u32 = start_of(4);
    let env = env(4, 1, "read-only", "");
    let first = env.id("sb1");
    start(&env, &sandbox_bundle(&first), &first);
    env.delete(&first); // the bare runc: hardrun never sees this delete
    let second = env.id("sb2");
    let pid = start(&env, &sandbox_bundle(&second), &second);
    assert_eq!(proc_uid_map(pid), block_line(START));
    let reclaimed = userns_events(&env, "reclaim");
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0]["userns"]["owner"], first.as_str());
    assert_eq!(reclaimed[0]["command"], "userns-reclaim");
}

/// A SIGKILL at each step of the table's replacement leaves a table that parses,
/// and the next allocation works and keeps no block for the killed create.
#[test]
fn kill_9_mid_allocation_leaves_a_consistent_table() {
    if !common::prerequisites_met() {
        return;
    }
    const START: u32 = start_of(5);
    for point in ["userns.before-write", "userns.before-rename", "userns.after-rename"] {
        let env = env(5, 2, "read-only", "");
        let keep = env.id("keep");
        start(&env, &sandbox_bundle(&keep), &keep);
        let killed = env.id("killed");
        let b = sandbox_bundle(&killed);
        let status = env
            .hardrun()
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(&killed)
            .command()
            .env(hardrun::faults::CRASH_ENV, point)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{point}: killed at the crash point");
        let owners: Vec<String> = table(&env)["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["owner"].as_str().unwrap().to_owned())
            .collect();
        let expected =
            if point == "userns.after-rename" { vec![keep.clone(), killed.clone()] } else { vec![keep.clone()] };
        assert_eq!(owners, expected, "{point}: the old table or the new one, whole");
        // The lock died with the process; the killed create's block comes back.
        let next = env.id("next");
        let pid = start(&env, &sandbox_bundle(&next), &next);
        assert_eq!(proc_uid_map(pid), block_line(START + BLOCK), "{point}");
        assert!(!env.state_dir.join("userns/.allocations.json.tmp").exists(), "{point}: temp file cleaned");
    }
}

#[test]
fn chown_strategy_lets_the_container_write_its_rootfs() {
    if !common::prerequisites_met() {
        return;
    }
    const START: u32 = start_of(6);
    let write = ["sh", "-c", "echo hi > /etc/new && mkdir -p /var && touch /bin/x && id -u"];
    let ro_env = env(6, 2, "read-only", "");
    let ro = bundle(&write);
    ro.edit(|s| s["root"]["readonly"] = json!(false));
    let (out, _) = run(&ro_env, &ro, &ro_env.id("ro"));
    assert_ne!(out.code, 0, "image files stay host root's under read-only: {out:?}");
    assert!(out.stderr.contains("Permission denied"), "{out:?}");

    let env = env(6, 2, "chown", "");
    let b = bundle(&write);
    b.edit(|s| s["root"]["readonly"] = json!(false));
    let id = env.id("chown");
    let original = b.config_bytes();
    assert_eq!(run_ok(&env, &b, &id), "0\n");
    let meta = |p: &str| std::fs::symlink_metadata(b.path().join("rootfs").join(p)).unwrap();
    assert_eq!(meta("etc/new").uid(), START, "written by the mapped root");
    assert_eq!(meta("bin/busybox").uid(), START, "image files shifted");
    assert_eq!(meta("bin/sh").uid(), START, "symlinks shifted themselves");
    let record = env.audit_record(&id);
    let rootfs: Vec<&Value> =
        record["findings"].as_array().unwrap().iter().filter(|f| f["rule"] == "userns.rootfs").collect();
    assert!(rootfs[0]["message"].as_str().unwrap().contains("shifted"), "{rootfs:?}");
    // The same rootfs with the same block is not walked again (config.json as the
    // first create found it: hardrun edited it in place).
    std::fs::write(b.config_path(), &original).unwrap();
    let again = env.id("again");
    assert_eq!(run_ok(&env, &b, &again), "0\n");
    let record = env.audit_record(&again);
    let note = record["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "userns.rootfs").cloned();
    assert!(note.unwrap()["message"].as_str().unwrap().contains("not walked again"), "{record}");
}

#[test]
fn idmap_strategy_is_refused_naming_the_runc_version() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env(7, 2, "idmap", "");
    let id = env.id("idmap");
    let msg = denied(&env, &sandbox_bundle(&id), &id);
    assert!(msg.contains("[userns.unavailable]") && msg.contains("idmap"), "{msg}");
    assert!(msg.contains("runc version 1.1.5"), "{msg}");
    assert!(!env.state_dir.join("userns/allocations.json").exists(), "nothing allocated");
}

#[test]
fn hostile_state_fails_closed_with_a_clear_error() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env(8, 2, "read-only", "");
    let dir = env.state_dir.join("userns");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let table = dir.join("allocations.json");
    type Make<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Make)> = vec![
        ("not a valid allocation table", Box::new(|| std::fs::write(&table, b"\x00garbage").unwrap())),
        (
            "not a valid allocation table",
            Box::new(|| std::fs::write(&table, br#"{"version":1,"allocations":[{"ow"#).unwrap()),
        ),
        (
            "is not a container id",
            Box::new(|| {
                std::fs::write(
                    &table,
                    br#"{"version":1,"allocations":[{"owner":"../x","root":"/r","hostStart":1500000000,"size":65536,"pid":0,"pidStart":0,"created":"t"}]}"#,
                )
                .unwrap()
            }),
        ),
        ("is a symlink", Box::new(|| std::os::unix::fs::symlink("/etc/passwd", &table).unwrap())),
    ];
    for (want, make) in cases {
        let _ = std::fs::remove_file(&table);
        make();
        let id = env.id("hostile");
        let msg = denied(&env, &sandbox_bundle(&id), &id);
        assert!(msg.contains("[userns.unavailable]") && msg.contains(want), "{want}: {msg}");
    }
    // A delete of an owner never fails on a bad table: runc runs, and the record
    // says why nothing was released.
    std::fs::create_dir_all(dir.join("owners")).unwrap();
    std::fs::write(dir.join("owners/gone-owner"), b"").unwrap();
    let out = env.hardrun().args(["delete", "gone-owner"]).output();
    assert!(out.stderr.contains("container does not exist"), "runc ran: {out:?}");
    let rec = env.audit_records_of("gone-owner").pop().unwrap();
    assert!(rec["reason"].as_str().unwrap().contains("not released"), "{rec}");
    std::fs::remove_file(&table).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let id = env.id("perm");
    let msg = denied(&env, &sandbox_bundle(&id), &id);
    assert!(msg.contains("writable by group or others"), "{msg}");
}

#[test]
fn host_namespaces_deny_or_skip_and_existing_user_namespaces_are_left_alone() {
    if !common::prerequisites_met() {
        return;
    }
    let host_net = |b: &Bundle| {
        b.edit(|s| {
            let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "network");
        });
    };
    let env_deny = env(9, 2, "read-only", "");
    let b = bundle(&["cat", "/proc/self/uid_map"]);
    host_net(&b);
    let id = env_deny.id("hostnet");
    let msg = denied(&env_deny, &b, &id);
    assert!(msg.contains("[userns.host-namespace]") && msg.contains("network"), "{msg}");

    let env_skip = env(9, 2, "read-only", "    onHostNamespace: skip\n");
    let id = env_skip.id("skip");
    assert_eq!(uid_map_of(&run_ok(&env_skip, &b, &id)), ["0 0 4294967295"], "no user namespace");
    let rec = env_skip.audit_record(&id);
    assert!(rec["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["rule"] == "userns.host-namespace" && f["action"] == "info"));

    let own = bundle(&["cat", "/proc/self/uid_map"]);
    own.edit(|s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1_800_000_000u32, "size": 65536}]);
        s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1_800_000_000u32, "size": 65536}]);
    });
    let id = env_skip.id("own");
    assert_eq!(uid_map_of(&run_ok(&env_skip, &own, &id)), ["0 1800000000 65536"], "its own mapping kept");
}

#[test]
fn run_as_non_root_accepts_root_mapped_into_the_pod_range() {
    if !common::prerequisites_met() {
        return;
    }
    const START: u32 = start_of(10);
    let env = env(10, 2, "read-only", "  process:\n    runAsNonRoot: true\n");
    let id = env.id("nonroot");
    let out = run_ok(&env, &bundle(&["id", "-u"]), &id);
    assert_eq!(out, "0\n", "root inside, host uid {START} outside");
    // Without the user namespace the same container is root on the host: denied.
    let plain = Env::new();
    plain.write_policy(
        "p.yaml",
        "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: p\nspec:\n  process:\n    runAsNonRoot: true\n",
    );
    let msg = denied(&plain, &bundle(&["id", "-u"]), &plain.id("root"));
    assert!(msg.contains("[process.run-as-root]"), "{msg}");
}

#[test]
fn an_app_container_whose_sandbox_has_no_block_is_denied() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env(11, 2, "read-only", "");
    // A pod's namespaces, not the host's (those would be denied for sharing the host's).
    let mut pod = std::process::Command::new("unshare").args(["--net", "--ipc", "sleep", "30"]).spawn().unwrap();
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_link(format!("/proc/{}/ns/net", pod.id())).ok().as_ref() == Some(&ours) {
        assert!(std::time::Instant::now() < deadline, "unshare did not enter a new network namespace");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let b = app_bundle("no-such-sandbox", pod.id(), &["true"]);
    let id = env.id("orphan");
    let msg = denied(&env, &b, &id);
    let _ = pod.kill();
    let _ = pod.wait();
    assert!(msg.contains("pod sandbox no-such-sandbox has no user namespace block"), "{msg}");
}

#[test]
fn a_closed_bundle_is_opened_to_the_pods_group_and_other_closed_directories_deny() {
    if !common::prerequisites_met() {
        return;
    }
    const START: u32 = start_of(12);
    let env = env(12, 2, "read-only", "");
    // containerd makes bundle directories 0700 unless it set up the user namespace.
    let b = bundle(&["id", "-u"]);
    std::fs::set_permissions(b.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let id = env.id("closed");
    assert_eq!(run_ok(&env, &b, &id), "0\n");
    let meta = std::fs::metadata(b.path()).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o710, START), "as containerd does for user namespaces");
    let rec = env.audit_record(&id);
    assert!(rec["findings"].as_array().unwrap().iter().any(|f| f["rule"] == "userns.bundle"), "{rec}");

    // A rootfs outside the bundle, below a directory hardrun does not own the
    // decision over: denied, naming it, and no block kept.
    let outside = bundle(&["true"]);
    let closed_dir = env.dir().join("closed");
    std::fs::create_dir(&closed_dir).unwrap();
    std::fs::set_permissions(&closed_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let moved = closed_dir.join("rootfs");
    std::fs::rename(outside.path().join("rootfs"), &moved).unwrap();
    outside.edit(|s| s["root"]["path"] = json!(moved));
    let id = env.id("far");
    let msg = denied(&env, &outside, &id);
    let closed = closed_dir.display().to_string();
    assert!(msg.contains("not searchable by others") && msg.contains(&closed), "{msg}");
    let owners: Vec<Value> =
        table(&env)["allocations"].as_array().unwrap().iter().map(|a| a["owner"].clone()).collect();
    assert!(!owners.contains(&json!(id)), "{owners:?}");
}

/// A network namespace made on the host before the pod, as CNI does for containerd
/// 1.6 (`/var/run/netns/cni-…`), bind-mounted on a file; unmounted on drop.
struct HostNetns(PathBuf);

impl HostNetns {
    fn new(env: &Env) -> Self {
        let path = env.file("netns");
        std::fs::write(&path, b"").unwrap();
        let out = std::process::Command::new("unshare").arg(format!("--net={}", path.display())).arg("true").output();
        assert!(out.as_ref().is_ok_and(|o| o.status.success()), "unshare --net: {out:?}");
        HostNetns(path)
    }
}

impl Drop for HostNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_pod_in_a_host_made_network_namespace_keeps_its_mapping_with_sysfs_as_a_read_only_bind() {
    if !common::prerequisites_met() {
        return;
    }
    const START: u32 = start_of(13);
    let env = env(13, 2, "read-only", "");
    let netns = HostNetns::new(&env);
    let net = json!({"type": "network", "path": netns.0});
    let sb = env.id("sb");
    let sandbox = sandbox_bundle(&sb);
    sandbox.edit(|s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        ns.push(net.clone());
    });
    let sb_pid = start(&env, &sandbox, &sb);
    assert_eq!(proc_uid_map(sb_pid), block_line(START));
    let sysfs =
        |id: &str| env.audit_record(id)["findings"].as_array().unwrap().iter().any(|f| f["rule"] == "userns.sysfs");
    assert!(sysfs(&sb), "the sandbox's sysfs became a bind");

    let app = app_bundle(&sb, sb_pid, &["sh", "-c", "cat /proc/self/uid_map; grep ' /sys ' /proc/self/mountinfo"]);
    app.edit(|s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        ns.push(net.clone());
    });
    let id = env.id("app");
    let out = run_ok(&env, &app, &id);
    let mut lines = out.lines();
    assert_eq!(uid_map_of(lines.next().unwrap()), block_line(START), "the pod's mapping");
    let sys = lines.next().unwrap();
    assert!(sys.split_whitespace().nth(5).unwrap().starts_with("ro,"), "/sys is read-only: {sys}");
    assert!(sysfs(&id));
    let rec = env.audit_record(&id);
    assert_eq!(rec["userns"]["action"], "join");
    let joined = rec["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "userns.joined").unwrap().clone();
    assert!(joined["message"].as_str().unwrap().contains("of its own"), "{joined}");

    // A long-running one: same host IDs as the sandbox, from outside.
    let app2 = app_bundle(&sb, sb_pid, &["sleep", "60"]);
    app2.edit(|s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        ns.push(net.clone());
    });
    let pid = start(&env, &app2, &env.id("app2"));
    assert_eq!(host_uid(pid), START);
    assert_eq!(proc_uid_map(pid), proc_uid_map(sb_pid));
}

#[test]
fn empty_dirs_chown_shifts_the_pods_own_empty_dirs_only() {
    if !common::prerequisites_met() {
        return;
    }
    const START: u32 = start_of(14);
    let pod_uid = "0f6e7d8c-1234-4abc-9def-000000000014";
    let run_pod = |empty_dirs: &str| {
        let env = env(14, 2, "read-only", &format!("    emptyDirs: {empty_dirs}\n"));
        let kubelet = env.dir().join("kubelet");
        let config = std::fs::read_to_string(&env.config_path).unwrap();
        env.write_config(&format!("{config}  kubeletDir: {}\n", kubelet.display()));
        let volumes = kubelet.join("pods").join(pod_uid).join("volumes");
        let cache = volumes.join("kubernetes.io~empty-dir/cache");
        let other = volumes.join("kubernetes.io~secret/token");
        for d in [&cache, &other] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::write(d.join("seed"), b"x").unwrap();
        }
        for d in [env.dir().to_owned(), kubelet.clone()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        let sb = env.id("sb");
        let sandbox = sandbox_bundle(&sb);
        sandbox.set_annotations(&[("io.kubernetes.cri.sandbox-uid", pod_uid)]);
        let pid = start(&env, &sandbox, &sb);
        let app = app_bundle(&sb, pid, &["sh", "-c", "echo y > /cache/new && echo written"]);
        for dir in ["cache", "token"] {
            std::fs::create_dir_all(app.path().join("rootfs").join(dir)).unwrap();
        }
        app.set_annotations(&[("io.kubernetes.cri.sandbox-uid", pod_uid)]);
        app.edit(|s| {
            let mounts = s["mounts"].as_array_mut().unwrap();
            for (dst, src) in [("/cache", &cache), ("/token", &other)] {
                mounts.push(json!({"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rw"]}));
            }
        });
        let id = env.id("app");
        let (out, _) = run(&env, &app, &id);
        let uid = |p: &Path| std::fs::symlink_metadata(p).unwrap().uid();
        (env, out, uid(&cache), uid(&cache.join("seed")), uid(&other), id)
    };
    let (_env, out, dir, seed, other, _) = run_pod("leave");
    assert_ne!(out.code, 0, "an emptyDir owned by host root is not writable: {out:?}");
    assert_eq!((dir, seed, other), (0, 0, 0));
    let (env, out, dir, seed, other, id) = run_pod("chown");
    assert_eq!(out.stdout, "written\n", "{out:?}");
    assert_eq!((dir, seed), (START, START), "the pod's emptyDir is shifted");
    assert_eq!(other, 0, "a secret volume is not an emptyDir: left alone");
    let rec = env.audit_record(&id);
    assert!(rec["findings"].as_array().unwrap().iter().any(|f| f["rule"] == "userns.empty-dir"), "{rec}");
}

#[test]
fn the_table_can_live_on_a_tmpfs_of_its_own() {
    if !common::prerequisites_met() {
        return;
    }
    const START: u32 = start_of(15);
    let env = env(15, 2, "read-only", "");
    let run_dir = tempfile::Builder::new().prefix("hardrun-userns-").tempdir_in("/dev/shm").unwrap();
    let table_dir = run_dir.path().join("userns");
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    env.write_config(&format!("{config}  stateDir: {}\n", table_dir.display()));
    let sb = env.id("sb");
    let pid = start(&env, &sandbox_bundle(&sb), &sb);
    assert_eq!(proc_uid_map(pid), block_line(START));
    let table: Value = serde_json::from_slice(&std::fs::read(table_dir.join("allocations.json")).unwrap()).unwrap();
    assert_eq!(table["allocations"][0]["owner"], sb.as_str());
    assert!(!env.state_dir.join("userns").exists(), "nothing under the node's stateDir");
    let out = env.hardrun().args(["delete", "-f", &sb]).output();
    assert_eq!(out.code, 0);
    assert_eq!(userns_events(&env, "release").len(), 1, "release finds the table there too");
}
