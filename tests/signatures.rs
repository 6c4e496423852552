//! Image signatures end to end: Debian's docker-registry on 127.0.0.1, busybox images
//! built with umoci and pushed with skopeo, signed with `hardrun sign`, and created
//! through hardrun and the real runc. Signed images run; unsigned, wrongly signed,
//! tag-only, reference-mismatched images are denied with their reasons; a stopped
//! registry denies unless a fresh verdict is cached; a stalled one times out.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{generate_keys, tools_present, Containerd, Registry, StalledServer};
use common::{log_lines, Bundle, Env, Outcome, HARDRUN, RUNC};
use serde_json::Value;

const PASSWORD: &str = "test-password";

fn node(registry_host: &str, timeout_ms: u64) -> Env {
    let env = Env::new();
    env.write_config(&format!(
        "{}debugLog: {}\nimageVerification:\n  insecureRegistries: [\"{registry_host}\"]\n  timeoutMs: {timeout_ms}\n",
        env.config_yaml(RUNC),
        env.dir().join("debug.log").display()
    ));
    env
}

fn policy(env: &Env, public_key: &Path, extra: &str) {
    env.write_policy(
        "signed.yaml",
        &format!(
            "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: signed-images\nspec:\n  imageSignature:\n    - images: [\"127.0.0.1:*/**\"]\n      authorities:\n        - key: {{file: {}}}\n{extra}",
            public_key.display()
        ),
    );
}

fn sign(env: &Env, key: &Path, image: &str) {
    let out = Command::new(HARDRUN)
        .args(["sign", "--key"])
        .arg(key)
        .arg(image)
        .env("HARDRUN_CONFIG", &env.config_path)
        .env("COSIGN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "sign {image}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `hardrun run` of a busybox bundle that claims to be `image`; returns the outcome,
/// runc's log lines and the audit record.
fn run_image(env: &Env, image: &str) -> (Outcome, Vec<Value>, Value) {
    let bundle = Bundle::new(&["echo", "container-ran"]);
    bundle
        .set_annotations(&[("io.kubernetes.cri.container-type", "container"), ("io.kubernetes.cri.image-name", image)]);
    let id = env.id("sig");
    let log = env.file("runc-log");
    let out = env.hardrun().log(&log).args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
    let record = env.audit_record(&id);
    (out, log_lines(&log), record)
}

fn assert_runs(env: &Env, image: &str) -> Value {
    let (out, log, record) = run_image(env, image);
    assert_eq!(out.code, 0, "{image}: {out:?}\nlog: {log:?}\nrecord: {record}");
    assert!(out.stdout.contains("container-ran"), "{out:?}");
    assert_eq!(record["signature"]["verified"], true, "{record}");
    record
}

fn assert_denied(env: &Env, image: &str, kind: &str) -> Value {
    let (out, log, record) = run_image(env, image);
    assert_ne!(out.code, 0, "{image} ran: {out:?}");
    assert!(!out.stdout.contains("container-ran"), "{out:?}");
    let msgs: Vec<&str> = log.iter().filter_map(|l| l["msg"].as_str()).collect();
    let line =
        msgs.iter().find(|m| m.contains("image.signature")).unwrap_or_else(|| panic!("no denial line: {msgs:?}"));
    assert!(line.contains(&format!("({kind})")), "{image}: expected {kind}: {line}");
    assert_eq!(msgs.len(), 1, "one line in runc's log: {msgs:?}");
    assert_eq!(record["decision"], "denied", "{record}");
    assert_eq!(record["signature"]["verified"], false, "{record}");
    record
}

fn hardrun_verify(env: &Env, args: &[&str]) -> Outcome {
    let out = Command::new(HARDRUN).arg("verify").args(args).env("HARDRUN_CONFIG", &env.config_path).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    Outcome {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

struct Setup {
    registry: Registry,
    _keys_dir: tempfile::TempDir,
    keys: PathBuf,
    key: PathBuf,
    public: PathBuf,
    signed: String,
    unsigned: String,
}

fn setup() -> Setup {
    let registry = Registry::start();
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = keys_dir.path().to_owned();
    let (key, public) = generate_keys(HARDRUN, &keys.join("good"), PASSWORD);
    let signed = registry.push_busybox("app", "v1", "one");
    let unsigned = registry.push_busybox("app", "v2", "two");
    Setup { registry, _keys_dir: keys_dir, keys, key, public, signed, unsigned }
}

#[test]
fn signed_images_run_and_every_other_kind_is_denied_with_its_reason() {
    if !common::prerequisites_met() || !tools_present() {
        return;
    }
    let mut s = setup();
    let host = s.registry.host.clone();
    let env = node(&host, 3000);
    policy(&env, &s.public, "");
    let signed_ref = format!("{host}/app@{}", s.signed);
    sign(&env, &s.key, &signed_ref);

    // Signed, pinned by digest: runs, and the record names the digest and signer.
    let record = assert_runs(&env, &signed_ref);
    assert_eq!(record["image"]["digest"], s.signed.as_str(), "{record}");
    assert!(record["signature"]["signer"].as_str().unwrap().starts_with("key sha256:"), "{record}");
    assert_eq!(record["signature"]["cached"], false);
    // The registry's bytes were parsed in the confined child (src/sandbox/), not in the
    // process that went on to exec runc.
    let debug = std::fs::read_to_string(env.dir().join("debug.log")).unwrap_or_default();
    assert!(debug.contains("verifier child confined") && debug.contains("seccomp=true"), "debug log: {debug}");
    // The same again comes from the cache.
    assert_eq!(assert_runs(&env, &signed_ref)["signature"]["cached"], true);
    // Tag and digest both given: the digest is what counts.
    assert_runs(&env, &format!("{host}/app:v1@{}", s.signed));

    // Unsigned.
    assert_denied(&env, &format!("{host}/app@{}", s.unsigned), "no-signature");
    // A tag alone (containerd cannot be asked here): the digest that runs is unknown.
    assert_denied(&env, &format!("{host}/app:v1"), "digest-unresolved");
    // Re-tagged: v1 now points at the unsigned image; pinning the new digest is unsigned.
    s.registry.copy("app:v2", "app:v1");
    assert_denied(&env, &format!("{host}/app:v1@{}", s.unsigned), "no-signature");

    // Signed by another key.
    let (other_key, _) = generate_keys(HARDRUN, &s.keys.join("other"), PASSWORD);
    let other_ref = format!("{host}/app@{}", s.unsigned);
    sign(&env, &other_key, &other_ref);
    assert_denied(&env, &other_ref, "signature-invalid");

    // A signature for another repository's name.
    let elsewhere = node(&host, 3000);
    policy(&elsewhere, &s.public, &format!("      signedRepository: {host}/somewhere-else\n"));
    assert_denied(&elsewhere, &signed_ref, "reference-mismatch");

    // `hardrun verify`: same verdicts, exit 0 only when trusted.
    let ok = hardrun_verify(&env, &["--key", s.public.to_str().unwrap(), &signed_ref]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.contains("trusted:") && ok.stdout.contains("signer: key sha256:"), "{ok:?}");
    let by_policy = hardrun_verify(&env, &["--policy-dir", env.policy_dir.to_str().unwrap(), &signed_ref]);
    assert_eq!(by_policy.code, 0, "{by_policy:?}");
    let bad = hardrun_verify(&env, &["--key", s.public.to_str().unwrap(), &other_ref]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stdout.contains("signature-invalid"), "{bad:?}");

    // Registry down: a fresh cached verdict still admits; without one, denied.
    s.registry.stop();
    assert_eq!(assert_runs(&env, &signed_ref)["signature"]["cached"], true);
    let cold = node(&host, 3000);
    policy(&cold, &s.public, "");
    assert_denied(&cold, &signed_ref, "registry-unreachable");
}

#[test]
fn a_stalled_registry_times_out_and_denies() {
    if !common::prerequisites_met() || !tools_present() {
        return;
    }
    let stalled = StalledServer::start();
    let env = node(&stalled.host, 500);
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = generate_keys(HARDRUN, keys.path(), PASSWORD);
    policy(&env, &public, "");
    let digest = format!("sha256:{}", "ab".repeat(32));
    let started = std::time::Instant::now();
    let record = assert_denied(&env, &format!("{}/app@{digest}", stalled.host), "registry-timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(record["reason"].as_str().unwrap().contains("no response within 500 ms"), "{record}");
}

#[test]
fn required_false_lets_an_unresolvable_digest_start_and_says_so() {
    if !common::prerequisites_met() || !tools_present() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = generate_keys(HARDRUN, keys.path(), PASSWORD);
    let env = node("127.0.0.1:1", 500);
    policy(&env, &public, "      required: false\n");
    let (out, _, record) = run_image(&env, "127.0.0.1:1/app:v1");
    assert_eq!(out.code, 0, "{out:?} {record}");
    assert_eq!(record["decision"], "failed-open", "{record}");
    assert!(record["signature"]["message"].as_str().unwrap().contains("required: false"), "{record}");
}

/// With containerd to ask, the digest that runs is containerd's, whatever the tag says
/// now: a tag-only reference is checked at containerd's digest, a pinned digest that
/// contradicts it is denied, and a re-tag pulled into containerd is caught.
#[test]
fn the_digest_containerd_runs_is_the_one_checked() {
    if !common::prerequisites_met() || !tools_present() {
        return;
    }
    let s = setup();
    let host = s.registry.host.clone();
    let containerd = Containerd::start();
    let env = Env::new();
    env.write_config(&format!(
        "{}imageVerification:\n  insecureRegistries: [\"{host}\"]\n  timeoutMs: 3000\n  containerdSocket: {}\n",
        env.config_yaml(RUNC),
        containerd.socket.display()
    ));
    policy(&env, &s.public, "");
    sign(&env, &s.key, &format!("{host}/app@{}", s.signed));
    // The containerd namespace is the last element of runc's --root, as under the shim.
    let ns = env.root.file_name().unwrap().to_str().unwrap().to_owned();
    let tag = format!("{host}/app:v1");
    containerd.ctr(&ns, &["images", "pull", "--plain-http", &tag]);

    let run_as = |image: &str| {
        let id = env.id("ctd");
        containerd.ctr(&ns, &["containers", "create", &tag, &id]);
        let bundle = Bundle::new(&["echo", "container-ran"]);
        bundle.set_annotations(&[
            ("io.kubernetes.cri.container-type", "container"),
            ("io.kubernetes.cri.image-name", image),
        ]);
        let log = env.file("runc-log");
        let out = env.hardrun().log(&log).args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
        (out, log_lines(&log), env.audit_record(&id))
    };

    // Tag only: containerd says v1 is the signed digest.
    let (out, log, record) = run_as(&tag);
    assert_eq!(out.code, 0, "{out:?} {log:?} {record}");
    assert_eq!(record["image"]["digest"], s.signed.as_str(), "{record}");
    // A pinned digest that is not what containerd runs.
    let (out, log, _) = run_as(&format!("{host}/app@{}", s.unsigned));
    assert_ne!(out.code, 0);
    assert!(format!("{log:?}").contains("pinned-digest-mismatch"), "{log:?}");
    // v1 moved to the unsigned image and containerd pulled it again.
    s.registry.copy("app:v2", "app:v1");
    containerd.ctr(&ns, &["images", "pull", "--plain-http", &tag]);
    let (out, log, record) = run_as(&tag);
    assert_ne!(out.code, 0, "{record}");
    assert!(format!("{log:?}").contains("(no-signature)"), "{log:?}");
    assert_eq!(record["image"]["digest"], s.unsigned.as_str(), "{record}");
}
