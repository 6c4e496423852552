//! The manifests in deploy/ parse, say what docs/kubernetes.md says they do, and the
//! containerd snippet in the docs is what `hardrun install` writes.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every document of a manifest file.
fn documents(rel: &str) -> Vec<Value> {
    use serde::Deserialize;
    let text = read(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

#[test]
fn every_manifest_parses_with_api_version_kind_and_name() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo("deploy")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let rel = format!("deploy/{}", path.file_name().unwrap().to_string_lossy());
            for doc in documents(&rel) {
                assert!(doc["apiVersion"].is_string() && doc["kind"].is_string(), "{rel}: {doc:?}");
                assert!(!s(&doc["metadata"]["name"]).is_empty(), "{rel}");
                seen += 1;
            }
        }
    }
    assert!(seen >= 5, "{seen} documents");
}

#[test]
fn runtime_class_and_pod_use_the_installed_handler() {
    let rc = documents("deploy/runtimeclass.yaml");
    let rc = of_kind(&rc, "RuntimeClass");
    assert_eq!(s(&rc["apiVersion"]), "node.k8s.io/v1");
    assert_eq!(s(&rc["handler"]), hardrun::install::DEFAULT_HANDLER);
    let pod = documents("deploy/example-pod.yaml");
    let pod = of_kind(&pod, "Pod");
    assert_eq!(pod["spec"]["runtimeClassName"], rc["metadata"]["name"]);
    // The docs show the RuntimeClass as it is.
    assert!(read("docs/kubernetes.md").contains(read("deploy/runtimeclass.yaml").split_once("apiVersion").unwrap().1));
}

#[test]
fn daemonset_installs_from_a_privileged_init_container_and_links_the_configmap() {
    let docs = documents("deploy/daemonset.yaml");
    let ds = of_kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(ds["spec"]["selector"]["matchLabels"], ds["spec"]["template"]["metadata"]["labels"]);
    assert_eq!(pod["hostPID"], Value::Bool(true), "nsenter into PID 1 restarts containerd");
    let init = &pod["initContainers"][0];
    assert_eq!(init["securityContext"]["privileged"], Value::Bool(true));
    let script = s(&init["command"][2]);
    assert!(script.contains("hardrun install --root-dir /host --no-policies"), "{script}");
    assert!(script.contains("systemctl restart containerd"));
    let volumes = pod["volumes"].as_sequence().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("volume {name}"));
    assert_eq!(s(&volume(s(&init["volumeMounts"][0]["name"]))["hostPath"]["path"]), "/");
    assert_eq!(s(&init["volumeMounts"][0]["mountPath"]), "/host");

    // The policies container links /etc/hardrun/policies.d (the default policyDir) to
    // the ConfigMap volume's host path, by the volume's name.
    let policies = pod["containers"].as_sequence().unwrap().iter().find(|c| c["name"] == "policies").unwrap();
    let script = s(&policies["command"][2]);
    let cm_volume = volume("policies");
    assert!(script.contains("/volumes/kubernetes.io~configmap/policies"), "{script}");
    assert!(script.contains("/host/etc/hardrun/policies.d"));
    assert_eq!(hardrun::config::NodeConfig::default().policy_dir, Path::new("/etc/hardrun/policies.d"));
    assert_eq!(s(&volume("host-etc-hardrun")["hostPath"]["path"]), "/etc/hardrun");
    assert_eq!(policies["env"][0]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.uid");

    // The ConfigMap it mounts holds policies hardrun loads and lint accepts: the shipped baseline.
    let cm = of_kind(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["name"], cm_volume["configMap"]["name"]);
    assert_eq!(cm["metadata"]["namespace"], ds["metadata"]["namespace"]);
    let data = cm["data"].as_mapping().unwrap();
    assert_eq!(s(&data[&Value::from("baseline.yaml")]), read("policies/baseline.yaml"));
    let dir = tempfile::tempdir().unwrap();
    for (k, v) in data {
        std::fs::write(dir.path().join(s(k)), s(v)).unwrap();
    }
    let lint = Command::new(env!("CARGO_BIN_EXE_hardrun")).arg("lint").arg(dir.path()).output().unwrap();
    assert!(lint.status.success(), "{}", String::from_utf8_lossy(&lint.stdout));
}

#[test]
fn containerd_snippet_in_docs_is_what_install_writes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, read("deploy/containerd/config.toml")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hardrun"))
        .args(["install", "--containerd-only", "--containerd-config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let installed = std::fs::read_to_string(&config).unwrap();
    let golden = read("deploy/containerd/config.hardrun.toml");
    // The golden file's first line says what it is; the rest is install's output.
    assert_eq!(installed.split_once('\n').unwrap().1, golden.split_once('\n').unwrap().1);
    let handler =
        &golden[golden.find("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.hardrun]").unwrap()..];
    assert!(
        read("docs/kubernetes.md").contains(&format!("```toml\n{handler}```")),
        "docs/kubernetes.md lacks:\n{handler}"
    );
}
