//! Each hardening control of issue #3 against the real runc: a busybox container is
//! created through hardrun under a policy that uses the control, and the effect is
//! observed from inside the container (its /proc/self/status, a failing write, a
//! shell builtin) or from runc's outcome (a denial in the `--log` file, no container).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{cap_mask, log_lines, proc_status, status_mask, Bundle, Env, Outcome, DOCKER_DEFAULT_CAPS};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------
// helpers

/// A `kind: Policy` document named `name` whose `spec:` is `body` (YAML at column 0).
fn policy(name: &str, body: &str) -> String {
    format!("apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: {name}\nspec:\n{}", indent(body))
}

fn indent(body: &str) -> String {
    body.lines().map(|l| format!("  {l}\n")).collect()
}

/// An env whose policy directory holds one policy, `body`.
fn env_with(body: &str) -> Env {
    let env = Env::new();
    env.write_policy("policy.yaml", &policy("under-test", body));
    env
}

/// Runs `bundle` in the foreground through hardrun, with a json `--log`.
fn run(env: &Env, bundle: &Bundle) -> (Outcome, String, PathBuf) {
    let id = env.id("ctl");
    let log = env.file("runc-log");
    let out = env.hardrun().log(&log).args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
    (out, id, log)
}

/// Runs `bundle` and expects it to exit 0; returns its stdout.
fn run_ok(env: &Env, bundle: &Bundle) -> String {
    run_ok_with_id(env, bundle).0
}

/// Like [`run_ok`], also returning the container id (for its audit record).
fn run_ok_with_id(env: &Env, bundle: &Bundle) -> (String, String) {
    let (out, id, log) = run(env, bundle);
    assert_eq!(out.code, 0, "run: {out:?}\nlog: {:?}\naudit: {}", log_lines(&log), env.audit_text());
    (out.stdout, id)
}

/// A bundle that prints its own /proc/self/status.
fn status_bundle() -> Bundle {
    Bundle::new(&["cat", "/proc/self/status"])
}

fn status_of(stdout: &str) -> BTreeMap<String, String> {
    let status = proc_status(stdout);
    assert!(status.contains_key("CapEff"), "no status printed: {stdout:?}");
    status
}

/// `runc spec` makes the rootfs read-only; controls that write to it need it writable.
fn writable_rootfs(bundle: &Bundle) {
    bundle.edit(|s| s["root"]["readonly"] = json!(false));
}

/// Sets all five capability sets to `caps`.
fn set_all_caps(bundle: &Bundle, caps: &[&str]) {
    bundle.edit(|s| {
        s["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps});
    });
}

fn with_cap(extra: &str) -> Vec<&str> {
    DOCKER_DEFAULT_CAPS.iter().copied().chain([extra]).collect()
}

/// Asserts that `create` of `bundle` is refused for `rule`: exit 1, one error line in
/// runc's `--log` naming the rule, no container, config.json untouched, and an audit
/// record saying `denied` with a denying finding for the rule. Returns the log message.
fn assert_denied(env: &Env, bundle: &Bundle, rule: &str) -> String {
    let before = bundle.config_bytes();
    let id = env.id("deny");
    let log = env.file("runc-log");
    let (out, _) = env.hardrun().log(&log).args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert_eq!(out.code, 1, "create must be refused for {rule}: {out:?}");
    assert_eq!(out.stdout, "", "hardrun wrote to stdout");
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 1, "one log line: {lines:?}");
    let msg = lines[0]["msg"].as_str().expect("msg").to_owned();
    assert_eq!(lines[0]["level"], "error");
    assert!(msg.starts_with("hardrun: container denied by policy: "), "{msg}");
    assert!(msg.contains(&format!("[{rule}]")), "rule {rule} not in {msg}");
    assert!(env.state(&id).is_none(), "container {id} exists after a denial");
    assert!(env.containers().is_empty(), "containers after a denial: {:?}", env.containers());
    assert_eq!(bundle.config_bytes(), before, "a denied spec must not be rewritten");
    let record = env.audit_record(&id);
    assert_eq!(record["decision"], "denied", "{record}");
    let finding = findings(&record).into_iter().find(|f| f["rule"] == rule);
    assert_eq!(finding.map(|f| f["action"].clone()), Some(json!("deny")), "{record}");
    msg
}

fn findings(record: &Value) -> Vec<Value> {
    record["findings"].as_array().cloned().unwrap_or_default()
}

/// The text after `marker` on its own line, up to the next line starting with `==`.
fn section<'a>(stdout: &'a str, marker: &str) -> &'a str {
    let start = stdout.find(marker).unwrap_or_else(|| panic!("no {marker} in {stdout:?}")) + marker.len();
    let rest = stdout[start..].trim_start_matches('\n');
    rest.find("\n==").map_or(rest, |end| &rest[..end + 1])
}

// ---------------------------------------------------------------------------------
// capabilities

#[test]
fn capabilities_are_clamped_to_the_allow_list() {
    if !common::prerequisites_met() {
        return;
    }
    let allowed = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let env = env_with("capabilities:\n  allow: [CAP_CHOWN, KILL, net_bind_service]\n");
    let bundle = status_bundle();
    bundle.set_caps(DOCKER_DEFAULT_CAPS);
    let (stdout, id) = run_ok_with_id(&env, &bundle);
    let status = status_of(&stdout);
    for field in ["CapEff", "CapBnd", "CapPrm"] {
        assert_eq!(status_mask(&status, field), cap_mask(&allowed), "{field}: {status:?}");
    }
    assert_eq!(
        bundle.spec()["process"]["capabilities"]["bounding"],
        json!(["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"])
    );
    let record = env.audit_record(&id);
    assert_eq!(record["decision"], "mutated");
    assert!(findings(&record)
        .iter()
        .any(|f| f["rule"] == "caps.clamped" && f["message"].as_str().is_some_and(|m| m.contains("CAP_NET_RAW"))));
}

#[test]
fn forbidden_capability_denies_the_container() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("capabilities:\n  forbidden: default\n  onForbidden: deny\n");
    let bundle = status_bundle();
    bundle.set_caps(&with_cap("CAP_SYS_ADMIN"));
    let msg = assert_denied(&env, &bundle, "caps.forbidden");
    assert!(msg.contains("CAP_SYS_ADMIN"), "{msg}");
}

#[test]
fn forbidden_capability_is_dropped_when_the_policy_says_drop() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("capabilities:\n  forbidden: [default, CAP_NET_RAW]\n  onForbidden: drop\n");
    let bundle = status_bundle();
    bundle.set_caps(&with_cap("CAP_SYS_ADMIN"));
    let status = status_of(&run_ok(&env, &bundle));
    let expected: Vec<&str> = DOCKER_DEFAULT_CAPS.iter().copied().filter(|c| *c != "CAP_NET_RAW").collect();
    assert_eq!(status_mask(&status, "CapEff"), cap_mask(&expected), "{status:?}");
    assert_eq!(status_mask(&status, "CapBnd"), cap_mask(&expected), "{status:?}");
}

// ---------------------------------------------------------------------------------
// process

#[test]
fn no_new_privileges_is_set() {
    if !common::prerequisites_met() {
        return;
    }
    let bundle = status_bundle();
    bundle.set_no_new_privileges(false);
    let unpoliced = env_with("mode: enforce\n");
    assert_eq!(status_of(&run_ok(&unpoliced, &bundle))["NoNewPrivs"], "0", "control run");
    let env = env_with("noNewPrivileges: true\n");
    assert_eq!(status_of(&run_ok(&env, &bundle))["NoNewPrivs"], "1");
    assert_eq!(bundle.spec()["process"]["noNewPrivileges"], true);
}

#[test]
fn run_as_non_root_denies_uid_0_and_runs_uid_1000() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("process:\n  runAsNonRoot: true\n");
    let bundle = Bundle::new(&["id", "-u"]);
    assert_denied(&env, &bundle, "process.run-as-root");
    bundle.edit(|s| s["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    assert_eq!(run_ok(&env, &bundle), "1000\n");
}

#[test]
fn rlimit_cap_lowers_nofile() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("process:\n  rlimits:\n    RLIMIT_NOFILE: 256\n    RLIMIT_NPROC: 300\n");
    // runc spec's RLIMIT_NOFILE is 1024/1024; NPROC is absent and gets added.
    let bundle = Bundle::new(&["sh", "-c", "ulimit -Sn; ulimit -Hn; ulimit -u"]);
    assert_eq!(run_ok(&env, &bundle), "256\n256\n300\n");
}

#[test]
fn umask_floor_is_or_ed_in() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("process:\n  umask: \"0027\"\n");
    let bundle = Bundle::new(&["sh", "-c", "umask"]);
    bundle.edit(|s| s["process"]["user"]["umask"] = json!(0o002));
    assert_eq!(run_ok(&env, &bundle), "0027\n");
    // A spec without a umask gets runc's 0022: the floor adds to that, never replaces it.
    let env = env_with("process:\n  umask: \"0007\"\n");
    let bundle = Bundle::new(&["sh", "-c", "umask"]);
    assert_eq!(run_ok(&env, &bundle), "0027\n");
}

// ---------------------------------------------------------------------------------
// filesystem

#[test]
fn read_only_rootfs_refuses_writes() {
    if !common::prerequisites_met() {
        return;
    }
    let script = "{ echo x > /x; } 2>&1; echo rc=$?";
    let bundle = Bundle::new(&["sh", "-c", script]);
    writable_rootfs(&bundle);
    let unpoliced = env_with("mode: enforce\n");
    assert_eq!(run_ok(&unpoliced, &bundle), "rc=0\n", "control run: the rootfs is writable");
    std::fs::remove_file(bundle.path().join("rootfs/x")).unwrap();
    let env = env_with("filesystem:\n  readOnlyRootfs: true\n");
    let out = run_ok(&env, &bundle);
    assert!(out.contains("Read-only file system") && out.ends_with("rc=1\n"), "{out:?}");
    assert!(!bundle.path().join("rootfs/x").exists());
}

#[test]
fn masked_and_readonly_paths_are_added() {
    if !common::prerequisites_met() {
        return;
    }
    // The spec brings none; the policy adds containerd's defaults and two of its own.
    let env = env_with("filesystem:\n  maskedPaths: [default, /proc/cpuinfo]\n  readonlyPaths: [default, /data]\n");
    let script = "echo ==cpuinfo; cat /proc/cpuinfo | wc -c; \
                  echo ==data; { echo x > /data/f; } 2>&1; echo rc=$?; \
                  echo ==rootfs; { echo x > /f; } 2>&1; echo rc=$?; \
                  echo ==mounts; cat /proc/self/mountinfo";
    let bundle = Bundle::new(&["sh", "-c", script]);
    std::fs::create_dir(bundle.path().join("rootfs/data")).unwrap();
    writable_rootfs(&bundle);
    bundle.edit(|s| {
        let linux = s["linux"].as_object_mut().unwrap();
        linux.remove("maskedPaths");
        linux.remove("readonlyPaths");
    });
    let out = run_ok(&env, &bundle);
    assert_eq!(section(&out, "==cpuinfo").trim(), "0", "masked /proc/cpuinfo is empty: {out}");
    let data = section(&out, "==data");
    assert!(data.contains("Read-only file system") && data.ends_with("rc=1\n"), "{data:?}");
    assert_eq!(section(&out, "==rootfs"), "rc=0\n", "the rootfs itself stays writable");
    // Every default masked/readonly path that exists shows up as its own mount.
    let mounts: Vec<&str> = section(&out, "==mounts").lines().filter_map(|l| l.split(' ').nth(4)).collect();
    // (runc skips paths the kernel lacks: this one has no /proc/kcore, for example.)
    let defaults =
        ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/sys", "/proc/sysrq-trigger"];
    let existing: Vec<&str> = defaults.into_iter().filter(|p| Path::new(p).exists()).collect();
    assert!(existing.len() >= 3, "too few default paths exist here to test: {existing:?}");
    for p in existing.iter().chain(&["/proc/cpuinfo", "/data"]) {
        assert!(mounts.contains(p), "{p} not mounted over: {mounts:?}");
    }
    let spec = bundle.spec();
    assert!(spec["linux"]["maskedPaths"].as_array().unwrap().contains(&json!("/proc/cpuinfo")));
    assert_eq!(spec["linux"]["readonlyPaths"].as_array().unwrap().len(), 6);
    // The control: without the policy, /proc/cpuinfo has content.
    let unpoliced = env_with("mode: enforce\n");
    let bundle = Bundle::new(&["sh", "-c", "cat /proc/cpuinfo | wc -c"]);
    let n: usize = run_ok(&unpoliced, &bundle).trim().parse().unwrap();
    assert!(n > 0);
}

/// A policy with the standard host-mount lists, plus `extra` under `hostMounts:`.
fn host_mount_policy(extra: &str) -> String {
    format!("filesystem:\n  hostMounts:\n    deny: default\n    denyWritable: default\n{}", indent(&indent(extra)))
}

fn add_bind(bundle: &Bundle, source: &Path, destination: &str, options: &[&str]) {
    bundle.edit(|s| {
        let opts: Vec<&str> = ["rbind"].into_iter().chain(options.iter().copied()).collect();
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": destination, "type": "bind", "source": source, "options": opts
        }));
    });
}

#[test]
fn sensitive_host_mounts_are_denied() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with(&host_mount_policy(""));
    let bundle = Bundle::new(&["true"]);
    add_bind(&bundle, Path::new("/etc"), "/host-etc", &["ro"]);
    let msg = assert_denied(&env, &bundle, "mounts.host-sensitive");
    assert!(msg.contains("/etc"), "{msg}");

    // A path that reaches / through `..` is still /.
    let bundle = Bundle::new(&["true"]);
    add_bind(&bundle, Path::new("/tmp/.."), "/host", &["ro"]);
    assert_denied(&env, &bundle, "mounts.host-sensitive");

    // Under /etc read-only is fine, read-write is not.
    let bundle = Bundle::new(&["sh", "-c", "ls /ssl >/dev/null && echo ok"]);
    add_bind(&bundle, Path::new("/etc/ssl"), "/ssl", &["rw"]);
    assert_denied(&env, &bundle, "mounts.host-writable");
    bundle.edit(|s| {
        let last = s["mounts"].as_array_mut().unwrap().last_mut().unwrap();
        last["options"] = json!(["rbind", "ro"]);
    });
    assert_eq!(run_ok(&env, &bundle), "ok\n");
}

#[test]
fn host_mount_allow_list_and_force_read_only() {
    if !common::prerequisites_met() {
        return;
    }
    let shared = tempfile::tempdir().unwrap();
    let forced = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let extra = format!(
        "allow: [\"{}\", \"{}\"]\nforceReadOnly: [\"{}\"]\n",
        shared.path().display(),
        forced.path().display(),
        forced.path().display()
    );
    let env = env_with(&host_mount_policy(&extra));
    let script = "echo ==shared; { echo hi > /shared/f; } 2>&1; echo rc=$?; \
                  echo ==forced; { echo hi > /forced/f; } 2>&1; echo rc=$?";
    let bundle = Bundle::new(&["sh", "-c", script]);
    add_bind(&bundle, shared.path(), "/shared", &["rw"]);
    add_bind(&bundle, forced.path(), "/forced", &[]);
    let (out, id) = run_ok_with_id(&env, &bundle);
    assert_eq!(section(&out, "==shared"), "rc=0\n", "{out}");
    assert_eq!(std::fs::read_to_string(shared.path().join("f")).unwrap(), "hi\n");
    let forced_out = section(&out, "==forced");
    assert!(forced_out.contains("Read-only file system") && forced_out.ends_with("rc=1\n"), "{out}");
    assert!(!forced.path().join("f").exists());
    let record = env.audit_record(&id);
    assert!(findings(&record).iter().any(|f| f["rule"] == "mounts.forced-ro"), "{record}");

    // A temp dir outside the allow-list is refused.
    let bundle = Bundle::new(&["true"]);
    add_bind(&bundle, other.path(), "/other", &["ro"]);
    assert_denied(&env, &bundle, "mounts.not-allowed");
}

// ---------------------------------------------------------------------------------
// namespaces, devices, sysctls, privileged shape

fn remove_namespace(bundle: &Bundle, kind: &str) {
    bundle.edit(|s| s["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != kind));
}

#[test]
fn host_namespaces_are_denied() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("namespaces:\n  denyHost: default\n");
    let own = Bundle::new(&["true"]);
    run_ok(&env, &own);

    let absent = Bundle::new(&["true"]);
    remove_namespace(&absent, "network");
    assert_denied(&env, &absent, "namespaces.host-network");

    let joined = Bundle::new(&["true"]);
    joined.edit(|s| {
        for n in s["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = json!("/proc/1/ns/net");
            }
        }
    });
    let msg = assert_denied(&env, &joined, "namespaces.host-network");
    assert!(msg.contains("/proc/1/ns/net"), "{msg}");

    let pid = Bundle::new(&["true"]);
    remove_namespace(&pid, "pid");
    remove_namespace(&pid, "ipc");
    let msg = assert_denied(&env, &pid, "namespaces.host-pid");
    assert!(msg.contains("[namespaces.host-ipc]"), "every denial is named: {msg}");
}

#[test]
fn extra_device_nodes_are_denied() {
    if !common::prerequisites_met() {
        return;
    }
    let kmsg = json!({"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 420, "uid": 0, "gid": 0});
    let bundle = Bundle::new(&["ls", "/dev/kmsg"]);
    bundle.edit(|s| s["linux"]["devices"] = json!([kmsg]));
    let env = env_with("devices:\n  allow: []\n");
    let msg = assert_denied(&env, &bundle, "devices.node");
    assert!(msg.contains("/dev/kmsg"), "{msg}");
    let allowed = env_with("devices:\n  allow: [/dev/kmsg]\n");
    assert_eq!(run_ok(&allowed, &bundle), "/dev/kmsg\n");
    // A cgroup rule opening every device is refused even when the node is allowed.
    bundle.edit(|s| s["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]));
    assert_denied(&allowed, &bundle, "devices.cgroup-rule");
}

#[test]
fn unsafe_sysctls_are_denied_and_safe_ones_apply() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("sysctls:\n  allow: default\n");
    let bundle = Bundle::new(&["cat", "/proc/sys/net/ipv4/ping_group_range"]);
    bundle.edit(|s| s["linux"]["sysctl"] = json!({"kernel.panic": "1"}));
    let msg = assert_denied(&env, &bundle, "sysctls.unsafe");
    assert!(msg.contains("kernel.panic"), "{msg}");
    bundle.edit(|s| s["linux"]["sysctl"] = json!({"net.ipv4.ping_group_range": "0 4242"}));
    assert_eq!(run_ok(&env, &bundle), "0\t4242\n");
}

#[test]
fn privileged_shape_is_denied() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("denyPrivileged: true\n");
    let bundle = Bundle::new(&["true"]);
    run_ok(&env, &bundle);
    bundle.edit(|s| {
        for m in s["mounts"].as_array_mut().unwrap() {
            if m["type"] == "sysfs" {
                m["options"] = json!(["nosuid", "noexec", "nodev", "rw"]);
            }
        }
    });
    let msg = assert_denied(&env, &bundle, "privileged");
    assert!(msg.contains("/sys mounted read-write"), "{msg}");
}

// ---------------------------------------------------------------------------------
// exemptions, audit mode, sandboxes, shipped policies

#[test]
fn exemption_lifts_a_denial_and_is_recorded() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("namespaces:\n  denyHost: [network]\n");
    let bundle = Bundle::new(&["ls", "-l", "/proc/self/ns/net"]);
    remove_namespace(&bundle, "network");
    assert_denied(&env, &bundle, "namespaces.host-network");
    env.write_policy(
        "exemption.yaml",
        "apiVersion: hardrun.dev/v1alpha1\nkind: Exemption\nmetadata:\n  name: host-net-ok\nspec:\n  \
         rules: [namespaces.host-network]\n  reason: the node exporter reads host interfaces\n",
    );
    let (out, id, _) = run(&env, &bundle);
    assert_eq!(out.code, 0, "{out:?}");
    // runc leaves the container in its own network namespace, which is this test's.
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert!(out.stdout.trim_end().ends_with(host_net.to_str().unwrap()), "not the host's netns: {out:?}");
    let record = env.audit_record(&id);
    assert_eq!(record["decision"], "allowed", "{record}");
    assert_eq!(record["exemptions"][0]["name"], "host-net-ok", "{record}");
    let f = findings(&record).into_iter().find(|f| f["rule"] == "namespaces.host-network").expect("finding");
    assert_eq!(f["action"], "exempt");
    assert_eq!(f["exemption"], "host-net-ok");
}

#[test]
fn audit_mode_records_and_starts_unchanged() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("mode: audit\nnoNewPrivileges: true\nprocess:\n  runAsNonRoot: true\n");
    let bundle = status_bundle();
    bundle.set_no_new_privileges(false);
    let before = bundle.config_bytes();
    let (out, id, _) = run(&env, &bundle);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(status_of(&out.stdout)["NoNewPrivs"], "0", "audit mode changed the container");
    assert_eq!(bundle.config_bytes(), before);
    let record = env.audit_record(&id);
    assert_eq!(record["decision"], "audit-only", "{record}");
    assert_eq!(record["mode"], "audit");
    let rules: Vec<(String, String)> = findings(&record)
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_owned(), f["action"].as_str().unwrap().to_owned()))
        .collect();
    assert!(rules.contains(&("process.run-as-root".into(), "deny".into())), "{rules:?}");
    assert!(rules.contains(&("process.no-new-privileges".into(), "mutate".into())), "{rules:?}");
    assert_eq!(record["patch"][0]["path"], "/process/noNewPrivileges", "{record}");
}

#[test]
fn sandbox_gets_the_floor_without_any_policy_for_it() {
    if !common::prerequisites_met() {
        return;
    }
    // The only policy selects `container`s (the default) and does not touch capabilities.
    let env = env_with("noNewPrivileges: true\n");
    let bundle = status_bundle();
    bundle.set_caps(DOCKER_DEFAULT_CAPS).set_no_new_privileges(false);
    let container = bundle.duplicate();
    bundle.set_annotations(&[("io.kubernetes.cri.container-type", "sandbox")]);

    let (out, id, _) = run(&env, &bundle);
    assert_eq!(out.code, 0, "{out:?}");
    let status = status_of(&out.stdout);
    for field in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(status_mask(&status, field), 0, "{field}: {status:?}");
    }
    assert_eq!(status["NoNewPrivs"], "1");
    let record = env.audit_record(&id);
    assert_eq!(record["context"]["containerType"], "sandbox");
    assert_eq!(record["policies"], json!([]), "no policy selected the sandbox: {record}");
    assert_eq!(record["decision"], "mutated");

    let status = status_of(&run_ok(&env, &container));
    assert_eq!(status_mask(&status, "CapEff"), cap_mask(DOCKER_DEFAULT_CAPS), "control: a container keeps them");
}

#[test]
fn restricted_policy_end_to_end() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/restricted.yaml");
    env.write_policy("restricted.yaml", &std::fs::read_to_string(shipped).unwrap());
    let script = "cat /proc/self/status; echo ==id; id -u; echo ==write; { echo x > /x; } 2>&1; echo rc=$?";
    let bundle = Bundle::new(&["sh", "-c", script]);
    // Docker's caps in every set (ambient too, so uid 1000 keeps what survives), no NNP.
    set_all_caps(&bundle, DOCKER_DEFAULT_CAPS);
    bundle.set_no_new_privileges(false);

    let (root, _, _) = run(&env, &bundle);
    assert_eq!(root.code, 1, "uid 0 is refused: {root:?}");

    bundle.edit(|s| s["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let (out, id) = run_ok_with_id(&env, &bundle);
    let status = status_of(&out);
    let only = cap_mask(&["CAP_NET_BIND_SERVICE"]);
    for field in ["CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"] {
        assert_eq!(status_mask(&status, field), only, "{field}: {status:?}");
    }
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(section(&out, "==id"), "1000\n");
    let write = section(&out, "==write");
    assert!(write.contains("Read-only file system") && write.ends_with("rc=1\n"), "{write:?}");
    let spec = bundle.spec();
    assert_eq!(spec["root"]["readonly"], true);
    // No AppArmor on this kernel and require: false: skipped, and the record says so.
    let record = env.audit_record(&id);
    assert!(findings(&record).iter().any(|f| f["rule"] == "apparmor.skipped" && f["action"] == "info"), "{record}");
    assert!(spec["process"].get("apparmorProfile").is_none());
}

#[test]
fn embedded_baseline_refuses_sys_admin() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new(); // no policy dir: the embedded baseline
    let bundle = status_bundle();
    bundle.set_caps(&with_cap("CAP_SYS_ADMIN"));
    assert_denied(&env, &bundle, "caps.forbidden");
    bundle.set_caps(DOCKER_DEFAULT_CAPS).set_no_new_privileges(false);
    let status = status_of(&run_ok(&env, &bundle));
    let expected: Vec<&str> = DOCKER_DEFAULT_CAPS.iter().copied().filter(|c| *c != "CAP_NET_RAW").collect();
    assert_eq!(status_mask(&status, "CapEff"), cap_mask(&expected));
    assert_eq!(status["NoNewPrivs"], "1");
}

// ---------------------------------------------------------------------------------
// AppArmor (this kernel has none: `hardrun explain` against a fake sysfs)

/// `hardrun explain --format json` of `bundle` with `sysRoot: sys_root`.
fn explain(env: &Env, bundle: &Bundle, sys_root: &Path) -> (i32, Value) {
    let config = env.file("config.yaml");
    let text = format!("{}sysRoot: {}\n", env.config_yaml(common::RUNC), sys_root.display());
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(common::HARDRUN)
        .args(["explain", "--format", "json", "--bundle"])
        .arg(bundle.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("explain output ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

fn fake_sysfs(enabled: Option<&str>, profiles: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    if let Some(enabled) = enabled {
        std::fs::create_dir_all(d.path().join("module/apparmor/parameters")).unwrap();
        std::fs::write(d.path().join("module/apparmor/parameters/enabled"), enabled).unwrap();
    }
    std::fs::create_dir_all(d.path().join("kernel/security/apparmor")).unwrap();
    std::fs::write(d.path().join("kernel/security/apparmor/profiles"), profiles).unwrap();
    d
}

/// The AppArmor findings as `rule:action`.
fn apparmor_findings(v: &Value) -> Vec<String> {
    findings(v)
        .iter()
        .filter(|f| f["rule"].as_str().is_some_and(|r| r.starts_with("apparmor.")))
        .map(|f| format!("{}:{}", f["rule"].as_str().unwrap(), f["action"].as_str().unwrap()))
        .collect()
}

#[test]
fn apparmor_required_on_both_host_branches() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("apparmor:\n  profile: runtime/default\n  require: true\n");
    let bundle = Bundle::new(&["true"]);
    let before = bundle.config_bytes();

    for (name, sysfs) in [
        ("no apparmor module", fake_sysfs(None, "")),
        ("apparmor disabled", fake_sysfs(Some("N\n"), "cri-containerd.apparmor.d (enforce)\n")),
        ("profile not loaded", fake_sysfs(Some("Y\n"), "/usr/bin/man (enforce)\n")),
    ] {
        let (code, v) = explain(&env, &bundle, sysfs.path());
        assert_eq!(code, 1, "{name}: {v}");
        assert_eq!(v["decision"], "denied", "{name}");
        assert_eq!(apparmor_findings(&v), ["apparmor.unavailable:deny"], "{name}");
    }

    let loaded = fake_sysfs(Some("Y\n"), "/usr/bin/man (complain)\ncri-containerd.apparmor.d (enforce)\n");
    let (code, v) = explain(&env, &bundle, loaded.path());
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["decision"], "mutated");
    assert_eq!(apparmor_findings(&v), ["apparmor.profile:mutate"]);
    assert_eq!(
        v["patch"],
        json!([{"op": "add", "path": "/process/apparmorProfile", "value": "cri-containerd.apparmor.d"}])
    );
    assert_eq!(v["spec"]["process"]["apparmorProfile"], "cri-containerd.apparmor.d");

    // An explicit `unconfined` in the spec is replaced, under its own rule ID.
    bundle.edit(|s| s["process"]["apparmorProfile"] = json!("unconfined"));
    let (_, v) = explain(&env, &bundle, loaded.path());
    assert_eq!(apparmor_findings(&v), ["apparmor.unconfined:mutate"]);
    assert_eq!(v["spec"]["process"]["apparmorProfile"], "cri-containerd.apparmor.d");
    bundle.edit(|s| {
        s["process"].as_object_mut().unwrap().remove("apparmorProfile");
    });
    assert_eq!(bundle.config_bytes(), before, "explain never writes config.json");
}

#[test]
fn apparmor_not_required_is_skipped_and_recorded() {
    if !common::prerequisites_met() {
        return;
    }
    let env = env_with("apparmor:\n  profile: localhost/my-profile\n  require: false\n");
    let bundle = Bundle::new(&["true"]);
    let (code, v) = explain(&env, &bundle, fake_sysfs(None, "").path());
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["decision"], "allowed");
    assert_eq!(apparmor_findings(&v), ["apparmor.skipped:info"]);
    assert!(v["spec"]["process"].get("apparmorProfile").is_none());
    let (_, v) = explain(&env, &bundle, fake_sysfs(Some("Y\n"), "my-profile (enforce)\n").path());
    assert_eq!(v["spec"]["process"]["apparmorProfile"], "my-profile", "localhost/ prefix stripped: {v}");

    // Two enforcing policies asking for different profiles for the same containers
    // make every such container unstartable: lint's HR011, so the node refuses the
    // whole set (and says why) rather than denying container by container.
    env.write_policy("other.yaml", &policy("other", "apparmor:\n  profile: runtime/default\n"));
    let log = env.file("log");
    let id = env.id("aa-conflict");
    let (out, _) = env.hardrun().log(&log).args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert_eq!(out.code, 1);
    let msg = log_lines(&log)[0]["msg"].as_str().unwrap().to_owned();
    assert!(msg.contains("policy set rejected by lint") && msg.contains("[HR011]"), "{msg}");
}
