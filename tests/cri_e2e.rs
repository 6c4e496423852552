//! End to end through the kubelet's peer: a real containerd 1.6, configured by
//! `hardrun install`, pulling from a real registry on loopback, driven through its CRI
//! API as the kubelet drives it. What the node's policy did is read from inside the
//! containers (/proc/self/status), from CRI errors and statuses, and from the audit log.

mod common;
#[path = "common/configmap.rs"]
mod configmap;
#[path = "common/cri.rs"]
mod cri;

use std::path::{Path, PathBuf};

use common::{cap_mask, json_lines, proc_status, status_mask, DOCKER_DEFAULT_CAPS};
use cri::{container_config, pod_config, wait_for_log, Containerd, Cri, Images, Registry};
use serde_json::Value;

/// A test node: registry, images, hardrun's files and containerd, in one temp dir.
struct Node {
    // Field order is drop order: pods are removed (in Drop) before containerd stops.
    cri: Cri,
    containerd: Containerd,
    registry: Registry,
    images: Images,
    audit_log: PathBuf,
    policy_dir: PathBuf,
    node_config: PathBuf,
    dir: tempfile::TempDir,
}

impl Node {
    /// `policies`: (file name, text) for the node's policy directory.
    fn start(policies: &[(&str, &str)]) -> Node {
        Node::start_with(policies, |_, _| String::new())
    }

    /// `extra_config(dir, registry)`: lines appended to hardrun's node config, given the
    /// node's temp dir (containerd's socket is `<dir>/containerd.sock`) and the
    /// registry's `host:port`.
    fn start_with(policies: &[(&str, &str)], extra_config: impl FnOnce(&Path, &str) -> String) -> Node {
        let dir = tempfile::Builder::new().prefix("hardrun-cri-").tempdir().unwrap();
        let d = dir.path();
        let registry = Registry::start(d);
        let images = cri::build_images(d, &registry);
        let prefix = cri::install_hardrun(d, &[]);
        let policy_dir = d.join("policies.d");
        std::fs::create_dir_all(&policy_dir).unwrap();
        for (name, text) in policies {
            std::fs::write(policy_dir.join(name), text).unwrap();
        }
        let audit_log = d.join("audit/audit.jsonl");
        let node_config = d.join("hardrun.yaml");
        std::fs::write(
            &node_config,
            format!(
                "runtime: /usr/sbin/runc\npolicyDir: {}\nauditLog: {}\nstateDir: {}\n{}",
                policy_dir.display(),
                audit_log.display(),
                d.join("hardrun-state").display(),
                extra_config(d, &registry.addr)
            ),
        )
        .unwrap();
        let config = d.join("containerd.toml");
        cri::write_containerd_config(&config, &registry, &images, &prefix, &["hardrun"]);
        let containerd = Containerd::start(d, &config, &[("HARDRUN_CONFIG", &node_config)]);
        let cri = Cri::connect(&containerd.socket);
        cri.pull(&images.busybox);
        Node { cri, containerd, registry, images, audit_log, policy_dir, node_config, dir }
    }

    fn log_dir(&self, pod: &str) -> PathBuf {
        self.dir.path().join("pods").join(pod)
    }

    fn audit(&self) -> Vec<Value> {
        json_lines(&std::fs::read_to_string(&self.audit_log).unwrap_or_default(), "audit log")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.cri.remove_all_pods();
    }
}

fn shipped_baseline() -> (&'static str, &'static str) {
    ("baseline.yaml", include_str!("../policies/baseline.yaml"))
}

/// Without CNI, test pods use the host's network (and so its UTS namespace): the
/// baseline denies that, as it should for real pods; this namespace is exempt, as a
/// node agent's would be. (An app container joining its sandbox's IPC namespace by
/// path needs no exemption: that namespace is the pod's, not the host's.)
const HOST_NETWORK_EXEMPTION: (&str, &str) = (
    "e2e-host-network.yaml",
    "apiVersion: hardrun.dev/v1alpha1\nkind: Exemption\nmetadata:\n  name: e2e-host-network\nspec:\n  match:\n    \
     namespaces: [e2e]\n  rules: [namespaces.host-network, namespaces.host-uts]\n  \
     reason: test pods without CNI run in the host's network\n",
);

/// containerd's default capabilities clamped to the baseline's allow list.
fn baseline_caps() -> u64 {
    let doc: serde_yaml::Value = serde_yaml::from_str(shipped_baseline().1).unwrap();
    let allow: Vec<&str> =
        doc["spec"]["capabilities"]["allow"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    cap_mask(DOCKER_DEFAULT_CAPS) & cap_mask(&allow)
}

const STATUS_THEN_SLEEP: &str = "cat /proc/self/status; echo ==done; exec sleep 600";

/// Starts a pod with one container printing its status; returns (pod id, container id, status).
fn status_pod(node: &Node, name: &str, handler: &str) -> (String, String, std::collections::BTreeMap<String, String>) {
    let sandbox = pod_config(name, &node.log_dir(name));
    let pod = node
        .cri
        .run_pod(&sandbox, handler)
        .unwrap_or_else(|e| panic!("RunPodSandbox {handler}: {e}\n{}", node.containerd.log_text()));
    let ctr =
        node.cri.create(&pod, &sandbox, container_config("app", &node.images.busybox, STATUS_THEN_SLEEP, &[])).unwrap();
    node.cri.start(&ctr).unwrap_or_else(|e| panic!("StartContainer {handler}: {e}"));
    let text = wait_for_log(&node.log_dir(name).join("app.log"), "==done");
    (pod, ctr, proc_status(&text))
}

#[test]
fn pods_under_the_hardrun_handler_get_the_node_policy_and_runc_pods_do_not() {
    if !common::prerequisites_met() || !cri::prerequisites_met() {
        return;
    }
    let node = Node::start(&[shipped_baseline(), HOST_NETWORK_EXEMPTION]);

    // RunPodSandbox → CreateContainer → StartContainer under hardrun.
    let (pod, ctr, status) = status_pod(&node, "hardened", "hardrun");
    assert_eq!(status["Seccomp"], "2", "{status:?}");
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(status_mask(&status, "CapEff"), baseline_caps(), "CapEff {}", status["CapEff"]);
    assert_eq!(status_mask(&status, "CapBnd"), baseline_caps());

    // kubectl exec: ExecSync gets the same clamp.
    let (code, stdout, stderr) = node.cri.exec_sync(&ctr, &["cat", "/proc/self/status"]);
    assert_eq!(code, 0, "{stderr}");
    let exec_status = proc_status(&stdout);
    assert_eq!(status_mask(&exec_status, "CapEff"), baseline_caps());
    assert_eq!(exec_status["NoNewPrivs"], "1");
    assert_eq!(exec_status["Seccomp"], "2");

    // A container asking for a forbidden capability: CreateContainer passes (runc is not
    // called yet), StartContainer fails with hardrun's rule and reason.
    let sandbox = pod_config("hardened", &node.log_dir("hardened"));
    let denied = node
        .cri
        .create(&pod, &sandbox, container_config("admin", &node.images.busybox, "sleep 1", &["SYS_ADMIN"]))
        .expect("CreateContainer does not run runc");
    let err = node.cri.start(&denied).expect_err("StartContainer must fail");
    let msg = err.message();
    assert!(msg.contains("hardrun: container denied by policy") && msg.contains("[caps.forbidden]"), "{msg}");
    assert!(msg.contains("CAP_SYS_ADMIN"), "{msg}");
    let st = node.cri.status(&denied);
    assert_eq!(st.reason, "StartError", "{st:?}");
    assert!(st.message.contains("[caps.forbidden]"), "{st:?}");

    // The same pod under containerd's runc handler is untouched.
    let (plain_pod, _, plain) = status_pod(&node, "plain", "runc");
    assert_eq!(plain["Seccomp"], "0");
    assert_eq!(plain["NoNewPrivs"], "0");
    assert_eq!(status_mask(&plain, "CapEff"), cap_mask(DOCKER_DEFAULT_CAPS));

    // The audit log holds the pod's records: sandbox, container, the denial, the exec.
    let records = node.audit();
    let of_pod = |name: &str| -> Vec<&Value> { records.iter().filter(|r| r["context"]["podName"] == name).collect() };
    let ours = of_pod("hardened");
    let find = |cmd: &str, ctype: &str, decision: &str| {
        ours.iter().any(|r| r["command"] == cmd && r["context"]["containerType"] == ctype && r["decision"] == decision)
    };
    assert!(find("create", "sandbox", "mutated"), "{ours:#?}");
    assert!(find("create", "container", "mutated"), "{ours:#?}");
    assert!(find("create", "container", "denied"), "{ours:#?}");
    assert!(ours.iter().any(|r| r["command"] == "exec"), "{ours:#?}");
    assert!(ours.iter().all(|r| r["context"]["namespace"] == "e2e"));
    assert!(of_pod("plain").is_empty(), "runc pods never reach hardrun");

    for p in [&pod, &plain_pod] {
        node.cri.stop_and_remove_pod(p);
    }
    assert!(node.cri.pod_ids().is_empty());
}

#[test]
fn a_denied_sandbox_fails_run_pod_sandbox() {
    if !common::prerequisites_met() || !cri::prerequisites_met() {
        return;
    }
    // A policy for sandboxes that no pause container can meet: runAsNonRoot.
    let strict = "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: nonroot-sandboxes\nspec:\n  \
                  match:\n    containerTypes: [sandbox]\n  mode: enforce\n  process:\n    runAsNonRoot: true\n";
    let node = Node::start(&[("strict.yaml", strict)]);
    let sandbox = pod_config("refused", &node.log_dir("refused"));
    let err = node.cri.run_pod(&sandbox, "hardrun").expect_err("RunPodSandbox must fail");
    assert!(err.message().contains("hardrun: container denied by policy"), "{}", err.message());
    let records = node.audit();
    assert!(records.iter().any(|r| r["context"]["podName"] == "refused" && r["decision"] == "denied"), "{records:#?}");
}

/// Policies delivered as a ConfigMap volume, swapped by the kubelet's atomic `..data`
/// rename while containerd runs: a broken version refuses new containers with the lint
/// message (and says so in the audit log); the fixed version is in force for the next
/// container. Nothing restarts.
#[test]
fn configmap_policy_swaps_reach_the_next_container_and_a_broken_set_fails_closed() {
    if !common::prerequisites_met() || !cri::prerequisites_met() {
        return;
    }
    let node = Node::start(&[]);
    let volume = configmap::ConfigMapVolume::new(&node.policy_dir);
    let good = [shipped_baseline(), HOST_NETWORK_EXEMPTION];
    volume.publish(&good);

    let (pod, _, status) = status_pod(&node, "cm", "hardrun");
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(status_mask(&status, "CapEff"), baseline_caps());

    // A version with an unknown field in one file.
    let broken = (
        "broken.yaml",
        "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: broken\nspec:\n  noNewPrivilege: true\n",
    );
    volume.publish(&[good[0], good[1], broken]);
    let sandbox = pod_config("cm", &node.log_dir("cm"));
    let script = "cat /proc/self/status; echo ==done; exec sleep 600";
    let refused =
        node.cri.create(&pod, &sandbox, container_config("during", &node.images.busybox, script, &[])).unwrap();
    let err = node.cri.start(&refused).expect_err("a broken policy set refuses new containers");
    assert!(
        err.message().contains("policy set rejected") && err.message().contains("noNewPrivilege"),
        "{}",
        err.message()
    );
    let new_pod = pod_config("cm-new", &node.log_dir("cm-new"));
    assert!(node.cri.run_pod(&new_pod, "hardrun").is_err(), "sandboxes are refused too");
    let denied: Vec<Value> = node
        .audit()
        .into_iter()
        .filter(|r| r["decision"] == "denied" && r["reason"].as_str().is_some_and(|m| m.contains("noNewPrivilege")))
        .collect();
    assert!(!denied.is_empty(), "the refusal is audited");

    // Fixed: the next container starts under the new version.
    volume.publish(&good);
    let fixed = node.cri.create(&pod, &sandbox, container_config("after", &node.images.busybox, script, &[])).unwrap();
    node.cri.start(&fixed).unwrap_or_else(|e| panic!("after the fix: {e}"));
    let text = wait_for_log(&node.log_dir("cm").join("after.log"), "==done");
    assert_eq!(status_mask(&proc_status(&text), "CapEff"), baseline_caps());
    node.cri.stop_and_remove_pod(&pod);
}

const KEY_PASSWORD: &str = "e2e-password";

/// `hardrun sign --generate-key` in `dir`: (private key, public key).
fn generate_keys(dir: &Path) -> (PathBuf, PathBuf) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hardrun"))
        .args(["sign", "--generate-key", "--output-dir"])
        .arg(dir)
        .env("COSIGN_PASSWORD", KEY_PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "generate-key: {}", String::from_utf8_lossy(&out.stderr));
    (dir.join("cosign.key"), dir.join("cosign.pub"))
}

/// Through CRI, as the kubelet pulls by tag: containerd resolves the digest, hardrun asks
/// containerd for it over its socket (namespace `k8s.io`, from runc's --root) and checks
/// that digest's signature. Unsigned: the container fails StartContainer with the rule
/// and the failure kind, as `kubectl describe pod` shows it. Signed: the next container
/// of the same image starts, and its record names the signer. The pause image is outside
/// the requirement's `images` and stays admitted.
#[test]
fn an_unsigned_image_is_refused_through_cri_and_runs_once_signed() {
    if !common::prerequisites_met() || !cri::prerequisites_met() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = generate_keys(keys.path());
    let node = Node::start_with(&[], |dir, registry| {
        format!(
            "imageVerification:\n  insecureRegistries: [\"{registry}\"]\n  timeoutMs: 5000\n  containerdSocket: {}\n",
            dir.join("containerd.sock").display()
        )
    });
    let policy = format!(
        "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: signed-app\nspec:\n  imageSignature:\n    \
         - images: [\"{}/test/busybox*\"]\n      authorities:\n        - key: {{file: {}}}\n",
        node.registry.addr,
        public.display()
    );
    std::fs::write(node.policy_dir.join("signed.yaml"), policy).unwrap();
    let image = &node.images.busybox;
    let pinned = node.cri.repo_digest(image);

    let sandbox = pod_config("signed", &node.log_dir("signed"));
    let pod = node.cri.run_pod(&sandbox, "hardrun").unwrap_or_else(|e| {
        panic!("the pause image is not under the requirement: {e}\n{}", node.containerd.log_text())
    });
    let script = "echo app-ran; exec sleep 600";
    let unsigned = node.cri.create(&pod, &sandbox, container_config("unsigned", image, script, &[])).unwrap();
    let err = node.cri.start(&unsigned).expect_err("an unsigned image must not start");
    let msg = err.message();
    assert!(msg.contains("hardrun: container denied: image.signature") && msg.contains("(no-signature)"), "{msg}");
    let st = node.cri.status(&unsigned);
    assert_eq!(st.reason, "StartError", "{st:?}");
    assert!(st.message.contains("(no-signature)"), "{st:?}");
    let digest = pinned.rsplit_once('@').unwrap().1.to_owned();
    let denied = node.audit().into_iter().find(|r| r["decision"] == "denied").expect("the denial is audited");
    assert_eq!(denied["image"]["digest"], digest.as_str(), "containerd's digest was checked: {denied}");
    assert_eq!(denied["signature"]["verified"], false, "{denied}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hardrun"))
        .args(["sign", "--key"])
        .arg(&key)
        .arg(&pinned)
        .env("HARDRUN_CONFIG", &node.node_config)
        .env("COSIGN_PASSWORD", KEY_PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "sign {pinned}: {}", String::from_utf8_lossy(&out.stderr));

    let signed = node.cri.create(&pod, &sandbox, container_config("signed", image, script, &[])).unwrap();
    node.cri.start(&signed).unwrap_or_else(|e| panic!("a signed image starts: {e}"));
    wait_for_log(&node.log_dir("signed").join("signed.log"), "app-ran");
    let records = node.audit();
    let ran = records
        .iter()
        .find(|r| r["command"] == "create" && r["context"]["containerType"] == "container" && r["decision"] != "denied")
        .unwrap_or_else(|| panic!("no record of the signed container: {records:#?}"));
    assert_eq!(ran["signature"]["verified"], true, "{ran}");
    assert_eq!(ran["image"]["digest"], digest.as_str(), "{ran}");
    assert!(ran["signature"]["signer"].as_str().is_some_and(|s| s.starts_with("key sha256:")), "{ran}");
    node.cri.stop_and_remove_pod(&pod);
}

const USERNS_RANGE_START: u64 = 2_000_000_000;
const USERNS_RANGE_SIZE: u64 = 10 * 65536;

/// The first line of a uid_map: (inside, outside, count).
fn first_mapping(uid_map: &str) -> (u64, u64, u64) {
    let f: Vec<u64> = uid_map.split_whitespace().take(3).map(|n| n.parse().unwrap()).collect();
    assert_eq!(f.len(), 3, "uid_map: {uid_map:?}");
    (f[0], f[1], f[2])
}

/// A pod in its own network namespace (the tests' CNI plugin) under a policy with
/// `userNamespace: {mode: pod}`: inside the app container root is mapped onto a block of
/// the node's host range, the sandbox has the same mapping, and from the host the app's
/// process runs as that unprivileged host UID.
#[test]
fn a_pod_gets_a_user_namespace_through_cri() {
    if !common::prerequisites_met() || !cri::prerequisites_met() {
        return;
    }
    let policy = (
        "userns.yaml",
        "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: pods-in-user-namespaces\nspec:\n  \
         match:\n    containerTypes: [sandbox, container]\n  userNamespace:\n    mode: pod\n",
    );
    let node = Node::start_with(&[policy], |dir, _| {
        // The mapped root must reach the rootfs under containerd's state dir, inside this
        // temp dir (tempfile makes it 0700); containerd's own directories are 0711.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
        format!(
            "userNamespaces:\n  hostRange: {{start: {USERNS_RANGE_START}, size: {USERNS_RANGE_SIZE}}}\n  stateDir: {}\n",
            dir.join("userns").display()
        )
    });
    let sandbox = cri::with_pod_network(pod_config("userns", &node.log_dir("userns")));
    let pod = node
        .cri
        .run_pod(&sandbox, "hardrun")
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", node.containerd.log_text()));
    let script = "cat /proc/self/uid_map; cat /var/run/secrets/kubernetes.io/serviceaccount/token; echo; \
                  echo ==done; exec sleep 600";
    let mut app = cri::in_pod_network(container_config("app", &node.images.busybox, script, &[]));
    // A service account token, as nearly every pod has, at a path the image lacks (and
    // the image lacks /etc/resolv.conf, which containerd binds into the sandbox): the
    // pod's root may not create them in the image's directories, so hardrun does.
    let token = node.dir.path().join("token");
    std::fs::create_dir_all(&token).unwrap();
    std::fs::write(token.join("token"), "e2e-token").unwrap();
    app.mounts.push(k8s_cri::v1::Mount {
        container_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
        host_path: token.display().to_string(),
        readonly: true,
        ..Default::default()
    });
    let ctr = node.cri.create(&pod, &sandbox, app).unwrap();
    node.cri.start(&ctr).unwrap_or_else(|e| panic!("StartContainer: {e}\n{:#?}", node.audit()));
    let inside = wait_for_log(&node.log_dir("userns").join("app.log"), "==done");

    assert!(inside.contains("e2e-token"), "the token volume is mounted: {inside}");
    let (first, start, count) = first_mapping(&inside);
    assert_eq!((first, count), (0, 65536), "uid_map inside: {inside}");
    assert!(
        (USERNS_RANGE_START..USERNS_RANGE_START + USERNS_RANGE_SIZE).contains(&start),
        "block {start} outside the host range: {inside}"
    );
    // kubectl exec: runc 1.1 joins the container's user namespace before its others,
    // and from there may not join the pod's ipc namespace (the sandbox's user namespace
    // owns it): a known gap (docs/userns.md, "Limits and known gaps"), pinned here so
    // the doc stays true. With a runc that joins in a workable order this fails: then
    // assert the mapping instead.
    let exec = node.cri.try_exec_sync(&ctr, &["cat", "/proc/self/uid_map"]);
    let err = exec.expect_err("runc 1.1 cannot exec into this container");
    assert!(err.message().contains("error executing setns process"), "{}", err.message());
    let sandbox_pid = cri::pid_of(&node.cri.pod_info(&pod));
    let sandbox_map = std::fs::read_to_string(format!("/proc/{sandbox_pid}/uid_map")).unwrap();
    assert_eq!(first_mapping(&sandbox_map), (0, start, 65536), "sandbox uid_map: {sandbox_map}");

    let app_pid = cri::pid_of(&node.cri.container_info(&ctr));
    let status = proc_status(&std::fs::read_to_string(format!("/proc/{app_pid}/status")).unwrap());
    let host_uid: u64 = status["Uid"].split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(host_uid, start, "container root is host uid {start}: {status:?}");

    // What made it possible, in the sandbox's record: its own user namespace, sysfs as a
    // bind (CNI's network namespace is the host user namespace's), /dev/shm's locked flags.
    let records = node.audit();
    let sandbox_record = records
        .iter()
        .find(|r| r["command"] == "create" && r["context"]["containerType"] == "sandbox")
        .expect("a sandbox record");
    let rules: Vec<&str> =
        sandbox_record["findings"].as_array().unwrap().iter().filter_map(|f| f["rule"].as_str()).collect();
    for rule in ["userns.allocated", "userns.sysfs", "userns.bind-flags", "userns.mount-points"] {
        assert!(rules.contains(&rule), "{rule} missing: {rules:?}");
    }
    let app_record = records
        .iter()
        .find(|r| r["command"] == "create" && r["context"]["containerName"] == "app")
        .unwrap_or_else(|| panic!("an app record: {records:#?}"));
    let created = app_record["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "userns.mount-points")
        .unwrap_or_else(|| panic!("mount points for the app: {app_record}"));
    assert!(
        created["message"].as_str().unwrap().contains("/var/run/secrets/kubernetes.io/serviceaccount"),
        "{created}"
    );
    node.cri.stop_and_remove_pod(&pod);
}
