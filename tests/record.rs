//! Seccomp profile recording against the real runc: a `kind: Recording` puts the
//! container under a notify filter, the recorder (`hardrun __recorder`) receives the
//! notify fd from runc and writes the profile when the container ends; the profile is
//! then enforced through a `localhost/` policy, checked from inside the container.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{log_lines, Bundle, Env, Outcome, DOCKER_DEFAULT_CAPS};
use serde_json::Value;

/// mkdir, a sleep, an AF_INET socket (nc to a closed port), then a marker.
const WORKLOAD: &str =
    "mkdir /dev/shm/d; echo mkdir=$?; sleep 0.1; /bin/busybox nc 127.0.0.1 1 </dev/null; echo nc=$?; echo done";
/// The workload plus one call it never made: symlink (busybox ln -s).
const WORKLOAD_PLUS_SYMLINK: &str =
    "mkdir /dev/shm/d; echo mkdir=$?; sleep 0.1; /bin/busybox nc 127.0.0.1 1 </dev/null; echo nc=$?; /bin/busybox ln -s /dev/shm/d /dev/shm/l; echo ln=$?; echo done";

fn recording_yaml(name: &str, output: &str, merge: &str, on_failure: &str) -> String {
    format!(
        "apiVersion: hardrun.dev/v1alpha1\nkind: Recording\nmetadata: {{name: {name}}}\nspec:\n  output: {output}\n  \
         merge: {merge}\n  onRecorderFailure: {on_failure}\n  timeoutSeconds: 2\n"
    )
}

fn bundle(script: &str) -> Bundle {
    let b = Bundle::new(&["/bin/busybox", "sh", "-c", script]);
    b.set_caps(DOCKER_DEFAULT_CAPS);
    b
}

fn recordings(env: &Env) -> PathBuf {
    env.state_dir.join("recordings")
}

/// Runs the bundle in the foreground through hardrun.
fn run(env: &Env, bundle: &Bundle, tag: &str) -> Outcome {
    let log = env.file("runc-log");
    let id = env.id(tag);
    let out = env.hardrun().log(&log).args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
    assert_eq!(out.code, 0, "hardrun run: {out:?}\nlog: {:?}\naudit: {}", log_lines(&log), env.audit_text());
    out
}

/// Waits for the recorder's audit record of `state` (it writes after the container ends).
fn wait_recorded(env: &Env, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let recs: Vec<Value> = env.audit_records().into_iter().filter(|r| r["command"] == "record").collect();
        if recs.len() >= count {
            return recs;
        }
        assert!(Instant::now() < deadline, "no recorder record; audit: {}", env.audit_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn profile_calls(path: &Path) -> Vec<String> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let obs = &v["comment"]["hardrunRecording"]["observed"];
    obs["syscalls"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

fn enforce_policy(env: &Env, profile: &Path) {
    env.write_policy(
        "record.yaml",
        &format!(
            "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {{name: recorded}}\nspec:\n  seccomp:\n    \
             profile: localhost/{}\n",
            profile.display()
        ),
    );
}

fn hardrun_tool(env: &Env, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::HARDRUN).env("HARDRUN_CONFIG", &env.config_path).args(args).output().unwrap()
}

#[test]
fn a_recorded_profile_has_the_workloads_calls_and_enforcing_it_denies_one_more() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "web", "none", "kill"));
    let out = run(&env, &bundle(WORKLOAD), "rec");
    assert!(out.stdout.contains("mkdir=0") && out.stdout.contains("done"), "{out:?}");
    let create = env.audit_records().into_iter().find(|r| r["command"] == "run").unwrap();
    assert_eq!(create["recording"]["state"], "armed", "{create}");
    let recs = wait_recorded(&env, 1);
    assert_eq!(recs[0]["recording"]["state"], "written", "{recs:?}");
    assert_eq!(recs[0]["context"], create["context"], "the recorder's record names the container like the create's");
    assert_eq!(recs[0]["recording"]["profile"], recordings(&env).join("web.json").display().to_string());

    let path = recordings(&env).join("web.json");
    let calls = profile_calls(&path);
    for call in ["mkdir", "socket", "connect", "nanosleep", "execve"] {
        let alt = if call == "nanosleep" { "clock_nanosleep" } else { call };
        assert!(calls.iter().any(|c| c == call || c == alt), "{call} missing from {calls:?}");
    }
    assert!(!calls.iter().any(|c| c == "symlink" || c == "symlinkat"), "{calls:?}");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let families = &v["comment"]["hardrunRecording"]["observed"]["args"]["socket"]["values"];
    assert!(families.as_array().unwrap().iter().any(|f| f == 2), "AF_INET recorded: {families}");

    // Enforced: the same workload runs; one more call fails with EPERM inside.
    enforce_policy(&env, &path);
    let same = run(&env, &bundle(WORKLOAD), "enf");
    assert!(same.stdout.contains("mkdir=0") && same.stdout.contains("done"), "{same:?}");
    let plus = run(&env, &bundle(WORKLOAD_PLUS_SYMLINK), "enf2");
    assert!(plus.stdout.contains("ln=1"), "{plus:?}");
    assert!(plus.stderr.contains("Operation not permitted"), "EPERM: {plus:?}");
    // Control: without the recorded profile the symlink works.
    env.write_policy("record.yaml", "");
    let control = run(&env, &bundle(WORKLOAD_PLUS_SYMLINK), "ctl");
    assert!(control.stdout.contains("ln=0"), "{control:?}");
}

/// The recorder's supervisor and worker pids, from its log (waits for it).
fn recorder_pids(env: &Env) -> (i32, i32) {
    let run_dir = recordings(env).join("run");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = std::fs::read_dir(&run_dir).into_iter().flatten().flatten().map(|e| e.path());
        for log in logs.filter(|p| p.extension().is_some_and(|x| x == "log")) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("(worker ")) {
                let sup = line.split('[').nth(1).and_then(|s| s.split(']').next()).unwrap().parse().unwrap();
                let worker = line.rsplit("(worker ").next().unwrap().trim_end_matches(')').parse().unwrap();
                return (sup, worker);
            }
        }
        assert!(Instant::now() < deadline, "no recorder log in {}", run_dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_log(env: &Env, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !recorder_log(env).contains(needle) {
        assert!(Instant::now() < deadline, "recorder log never said {needle:?}: {}", recorder_log(env));
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn recorder_log(env: &Env) -> String {
    let run_dir = recordings(env).join("run");
    let Ok(entries) = std::fs::read_dir(&run_dir) else { return String::new() };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
}

/// A workload that keeps making calls for ~1.5 s after the recorder is hit at 0.3 s.
const SLOW: &str = "sleep 0.3; for i in 1 2 3 4 5; do mkdir /dev/shm/d$i; sleep 0.3; done; echo done";

/// Runs SLOW through hardrun in the foreground while `hit` is applied to the
/// recorder's (supervisor, worker) once the workload is recording. The run must end
/// within the deadline (a hang fails the test instead of blocking it).
fn run_and_hit(env: &Env, tag: &str, hit: impl FnOnce(i32, i32) + Send) -> (Outcome, Duration) {
    let b = bundle(SLOW);
    let started = Instant::now();
    let out = std::thread::scope(|s| {
        let runner = s.spawn(|| {
            let log = env.file("runc-log");
            env.hardrun().log(&log).args(["run", "--bundle"]).arg(b.path()).arg(env.id(tag)).output()
        });
        let (sup, worker) = recorder_pids(env);
        wait_log(env, "receiving notifications of process");
        hit(sup, worker);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !runner.is_finished() {
            if Instant::now() > deadline {
                // Unblock the container so the test can report instead of hanging.
                let mut log = recorder_log(env);
                for pid in [sup, worker] {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
                    let sys = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
                    log += &format!("\n{pid}: {stat} wchan={wchan} syscall={sys}");
                }
                for id in env.containers() {
                    env.delete(&id);
                }
                panic!("the container hung after the recorder was hit; recorder log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        runner.join().unwrap()
    });
    (out, started.elapsed())
}

#[test]
fn a_killed_recorder_with_allow_lets_the_container_finish_unrecorded() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "allow", "none", "allow"));
    let (out, _) = run_and_hit(&env, "kill-allow", |_, worker| signal(worker, nix::sys::signal::Signal::SIGKILL));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("done") && !out.stderr.contains("mkdir"), "every call still works: {out:?}");
    let recs = wait_recorded(&env, 1);
    assert_eq!(recs[0]["recording"]["state"], "failed", "{recs:?}");
    assert_eq!(recs[0]["decision"], "failed-open", "{recs:?}");
    assert!(!recordings(&env).join("allow.json").exists(), "no profile from a failed recording");
    let log = recorder_log(&env);
    assert!(log.contains("onRecorderFailure: Allow") && log.contains("passing"), "{log}");
}

#[test]
fn a_killed_recorder_with_kill_kills_the_container() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "kill", "none", "kill"));
    let (out, _) = run_and_hit(&env, "kill-kill", |_, worker| signal(worker, nix::sys::signal::Signal::SIGKILL));
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("done"), "{out:?}");
    let recs = wait_recorded(&env, 1);
    assert_eq!(recs[0]["recording"]["state"], "failed", "{recs:?}");
    assert_eq!(recs[0]["decision"], "denied", "{recs:?}");
}

#[test]
fn a_stalled_recorder_is_detected_after_the_timeout() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "stall", "none", "allow"));
    let mut stopped = 0;
    let (out, took) = run_and_hit(&env, "stall", |_, worker| {
        stopped = worker;
        signal(worker, nix::sys::signal::Signal::SIGSTOP);
    });
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("done"), "{out:?}");
    // The workload waited for the 2 s timeout, once.
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(10), "{took:?}");
    let recs = wait_recorded(&env, 1);
    assert!(recs[0]["reason"].as_str().unwrap().contains("unanswered"), "{recs:?}");
    // The stopped worker was killed, not left behind.
    assert!(
        !Path::new(&format!("/proc/{stopped}")).exists() || {
            let stat = std::fs::read_to_string(format!("/proc/{stopped}/stat")).unwrap_or_default();
            stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'))
        }
    );
}

#[test]
fn with_both_recorder_processes_dead_calls_fail_with_enosys_instead_of_hanging() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "gone", "none", "allow"));
    let (out, took) = run_and_hit(&env, "gone", |sup, worker| {
        signal(sup, nix::sys::signal::Signal::SIGKILL);
        signal(worker, nix::sys::signal::Signal::SIGKILL);
    });
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The kernel answers the notifying calls with ENOSYS once no listener is left.
    assert!(out.stderr.contains("Function not implemented") || out.code != 0, "{out:?}");
    assert!(!out.stdout.contains("done"), "{out:?}");
}

#[test]
fn merge_containers_unions_the_runs_of_a_container() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "app", "containers", "kill"));
    run(&env, &bundle("mkdir /dev/shm/a; echo ok"), "m1");
    wait_recorded(&env, 1);
    run(&env, &bundle("/bin/busybox ln -s /x /dev/shm/l; echo ok"), "m2");
    let recs = wait_recorded(&env, 2);
    assert!(recs.iter().all(|r| r["recording"]["state"] == "written"), "{recs:?}");
    let path = recordings(&env).join("app.json");
    let calls = profile_calls(&path);
    assert!(calls.iter().any(|c| c == "mkdir" || c == "mkdirat"), "{calls:?}");
    assert!(calls.iter().any(|c| c == "symlink" || c == "symlinkat"), "{calls:?}");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let obs = &v["comment"]["hardrunRecording"]["observed"];
    assert_eq!(obs["runs"], 2, "{obs}");
    assert_eq!(obs["containers"].as_array().unwrap().len(), 2, "{obs}");

    // merge: none replaces instead.
    env.write_policy("record.yaml", &recording_yaml("rec", "app", "none", "kill"));
    run(&env, &bundle("echo ok"), "m3");
    wait_recorded(&env, 3);
    let calls = profile_calls(&path);
    assert!(!calls.iter().any(|c| c == "symlink" || c == "symlinkat"), "{calls:?}");
}

/// Connects to the recorder's socket and sends `data` with `fd` (if any).
fn send_to_recorder(socket: &Path, data: &[u8], fd: Option<i32>) {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let stream = std::os::unix::net::UnixStream::connect(socket).unwrap_or_else(|e| {
        let dir: Vec<_> = std::fs::read_dir(socket.parent().unwrap()).unwrap().flatten().map(|e| e.path()).collect();
        panic!("connect {}: {e}; dir: {dir:?}", socket.display())
    });
    let iov = [std::io::IoSlice::new(data)];
    let fds: Vec<i32> = fd.into_iter().collect();
    let cmsgs: Vec<ControlMessage> = if fds.is_empty() { vec![] } else { vec![ControlMessage::ScmRights(&fds)] };
    sendmsg::<()>(stream.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None).unwrap();
}

#[test]
fn hostile_connections_to_the_recorder_are_refused_and_recording_goes_on() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "hostile", "none", "kill"));
    let b = bundle(SLOW);
    let id = env.id("hostile");
    let out = std::thread::scope(|s| {
        let runner = s.spawn(|| env.hardrun().args(["run", "--bundle"]).arg(b.path()).arg(&id).output());
        wait_log(&env, "receiving notifications of process");
        let seccomp = b.spec()["linux"]["seccomp"].clone();
        let socket = PathBuf::from(seccomp["listenerPath"].as_str().unwrap());
        let token = seccomp["listenerMetadata"].as_str().unwrap().to_owned();
        let devnull = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsRawFd;
        send_to_recorder(&socket, b"\x00\xffgarbage{{{", None);
        let state = |meta: &str, cid: &str| {
            format!(
                r#"{{"ociVersion":"1.0.2","fds":["seccompFd"],"pid":1,"metadata":"{meta}","state":{{"id":"{cid}"}}}}"#
            )
        };
        send_to_recorder(&socket, state("wrong", &id).as_bytes(), Some(devnull.as_raw_fd()));
        send_to_recorder(&socket, state(&token, "other").as_bytes(), Some(devnull.as_raw_fd()));
        send_to_recorder(&socket, state(&token, &id).as_bytes(), Some(devnull.as_raw_fd()));
        send_to_recorder(&socket, state(&token, &id).as_bytes(), None);
        runner.join().unwrap()
    });
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("done"), "{out:?}");
    let recs = wait_recorded(&env, 1);
    assert_eq!(recs[0]["recording"]["state"], "written", "{recs:?}");
    let log = recorder_log(&env);
    for why in [
        "not runc's process state",
        "listenerMetadata is not this recorder's token",
        "state names container \"other\"",
        "not a seccomp notify fd",
        "expected one seccompFd, got names [\"seccompFd\"] and 0 fd(s)",
    ] {
        assert!(log.contains(why), "{why:?} not in {log}");
    }
}

#[test]
fn an_unreadable_recording_is_never_merged_into_or_overwritten() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "bad", "containers", "kill"));
    let dir = recordings(&env);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.json"), b"{ not json").unwrap();
    run(&env, &bundle("echo ok"), "bad");
    let recs = wait_recorded(&env, 1);
    assert_eq!(recs[0]["recording"]["state"], "write-failed", "{recs:?}");
    assert!(recs[0]["reason"].as_str().unwrap().contains("not merging into it"), "{recs:?}");
    assert_eq!(std::fs::read(dir.join("bad.json")).unwrap(), b"{ not json");

    // A symlink in the recording's place is refused too (by the merge's read).
    std::fs::remove_file(dir.join("bad.json")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("bad.json")).unwrap();
    run(&env, &bundle("echo ok"), "link");
    let recs = wait_recorded(&env, 2);
    assert_eq!(recs[1]["recording"]["state"], "write-failed", "{recs:?}");
    assert!(recs[1]["reason"].as_str().unwrap().contains("symlink"), "{recs:?}");
    let show = hardrun_tool(&env, &["profile", "show", "bad"]);
    assert_eq!(show.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&show.stderr).contains("symlink"), "{show:?}");
}

#[test]
fn an_invalid_recording_document_rejects_the_policy_set() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "../escape", "none", "kill"));
    let log = env.file("runc-log");
    let out =
        env.hardrun().log(&log).args(["run", "--bundle"]).arg(bundle("echo ok").path()).arg(env.id("inv")).output();
    assert_eq!(out.code, 1, "{out:?}");
    let lines = log_lines(&log);
    assert!(lines.iter().any(|l| l["msg"].as_str().unwrap_or("").contains("invalid recording name")), "{lines:?}");
    assert!(!env.state_dir.join("recordings").exists());
}

#[test]
fn profile_commands_list_show_diff_merge_and_harden() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "one", "none", "kill"));
    run(&env, &bundle("mkdir /dev/shm/a; echo ok"), "p1");
    wait_recorded(&env, 1);
    env.write_policy("record.yaml", &recording_yaml("rec", "two", "none", "kill"));
    run(&env, &bundle("/bin/busybox ln -s /x /dev/shm/l; echo ok"), "p2");
    wait_recorded(&env, 2);
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();

    let list = hardrun_tool(&env, &["profile", "list"]);
    assert!(list.status.success(), "{list:?}");
    assert!(text(&list).contains("one") && text(&list).contains("two"), "{}", text(&list));
    let show = hardrun_tool(&env, &["profile", "show", "one"]);
    assert!(text(&show).lines().any(|l| l.trim() == "mkdir" || l.trim() == "mkdirat"), "{}", text(&show));
    let diff = hardrun_tool(&env, &["profile", "diff", "one", "two"]);
    assert_eq!(diff.status.code(), Some(1), "{diff:?}");
    assert!(text(&diff).lines().any(|l| l == "- mkdir" || l == "- mkdirat"), "{}", text(&diff));
    assert!(text(&diff).lines().any(|l| l == "+ symlink" || l == "+ symlinkat"), "{}", text(&diff));
    let same = hardrun_tool(&env, &["profile", "diff", "one", "one"]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");
    let merge = hardrun_tool(&env, &["profile", "merge", "one", "two", "--output", "both"]);
    assert!(merge.status.success(), "{merge:?}");
    let both = profile_calls(&recordings(&env).join("both.json"));
    assert!(both.iter().any(|c| c.starts_with("mkdir")) && both.iter().any(|c| c.starts_with("symlink")));
    let bad = hardrun_tool(&env, &["profile", "merge", "one", "--output", "../x"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");

    // harden: the snippet is a policy that loads and enforces the recording.
    let harden = hardrun_tool(&env, &["profile", "harden", "both"]);
    assert!(harden.status.success(), "{harden:?}");
    let snippet = text(&harden);
    assert!(snippet.contains("denies") && snippet.contains("kind: Policy"), "{snippet}");
    env.write_policy("record.yaml", &snippet);
    let lint = hardrun_tool(&env, &["lint", env.policy_dir.to_str().unwrap()]);
    assert!(lint.status.success(), "{lint:?}");
    let script =
        "mkdir /dev/shm/a; /bin/busybox ln -s /x /dev/shm/l; echo ln=$?; /bin/busybox nc 127.0.0.1 1; echo nc=$?";
    let out = run(&env, &bundle(script), "hardened");
    // socket was never recorded in `both`: nc fails with EPERM now, ln works.
    assert!(out.stdout.contains("ln=0") && out.stdout.contains("nc=1"), "{out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
}

/// Without no_new_privileges runc loads the filter earlier (before it drops
/// capabilities and changes user), so more of runc's own calls are recorded; the
/// profile enforced on the same spec must still let runc start the container.
#[test]
fn recording_and_enforcing_work_without_no_new_privileges() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "nnp", "none", "kill"));
    let b = bundle(WORKLOAD);
    b.set_no_new_privileges(false);
    b.edit(|s| s["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000}));
    let out = run(&env, &b, "nnp");
    assert!(out.stdout.contains("done"), "{out:?}");
    wait_recorded(&env, 1);
    let path = recordings(&env).join("nnp.json");
    let calls = profile_calls(&path);
    assert!(calls.iter().any(|c| c == "setresuid" || c == "setuid"), "runc's user switch recorded: {calls:?}");
    enforce_policy(&env, &path);
    let again = bundle(WORKLOAD);
    again.set_no_new_privileges(false);
    again.edit(|s| s["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000}));
    let out = run(&env, &again, "nnp-enforce");
    assert!(out.stdout.contains("done"), "{out:?}");
    let status = run(&env, &bundle("grep Seccomp: /proc/self/status"), "nnp-status");
    assert!(status.stdout.contains("Seccomp:\t2"), "{status:?}");
}

/// `runc exec` into a recorded container loads the same filter and connects to the
/// same recorder: what the exec'd process calls is in the profile.
#[test]
fn calls_of_exec_processes_are_recorded_too() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "exec", "none", "kill"));
    let b = bundle("sleep 1.5; echo done");
    let id = env.id("exec");
    let (created, _) = env.hardrun().args(["create", "--bundle"]).arg(b.path()).arg(&id).run_to_files();
    assert_eq!(created.code, 0, "{created:?}");
    let started = env.hardrun().args(["start", &id]).output();
    assert_eq!(started.code, 0, "{started:?}");
    let exec = env.hardrun().args(["exec", &id, "/bin/busybox", "ln", "-s", "/x", "/dev/shm/viaexec"]).output();
    assert_eq!(exec.code, 0, "{exec:?}");
    let recs = wait_recorded(&env, 1);
    assert_eq!(recs[0]["recording"]["state"], "written", "{recs:?}");
    let calls = profile_calls(&recordings(&env).join("exec.json"));
    assert!(calls.iter().any(|c| c == "symlink" || c == "symlinkat"), "{calls:?}");
    assert_eq!(recorder_log(&env).matches("receiving notifications of process").count(), 2, "{}", recorder_log(&env));
}

/// A container created and deleted without start never ran its process: nothing is
/// written over the profile of earlier runs.
#[test]
fn a_container_that_never_started_does_not_replace_the_profile() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "keep", "none", "kill"));
    run(&env, &bundle(WORKLOAD), "keep1");
    wait_recorded(&env, 1);
    let path = recordings(&env).join("keep.json");
    let before = std::fs::read(&path).unwrap();
    let b = bundle("echo never");
    let id = env.id("keep2");
    let (created, _) = env.hardrun().args(["create", "--bundle"]).arg(b.path()).arg(&id).run_to_files();
    assert_eq!(created.code, 0, "{created:?}");
    env.delete(&id);
    let recs = wait_recorded(&env, 2);
    assert_eq!(recs[1]["recording"]["state"], "abandoned", "{recs:?}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// A service may never end: with checkpointSeconds the profile is written while the
/// container runs; the final write counts the run once.
#[test]
fn checkpoints_write_the_profile_while_the_container_runs() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let yaml = recording_yaml("rec", "svc", "containers", "kill") + "  checkpointSeconds: 1\n";
    env.write_policy("record.yaml", &yaml);
    let b = bundle("mkdir /dev/shm/a; sleep 3; echo done");
    let path = recordings(&env).join("svc.json");
    std::thread::scope(|s| {
        let runner = s.spawn(|| env.hardrun().args(["run", "--bundle"]).arg(b.path()).arg(env.id("svc")).output());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(Instant::now() < deadline, "no checkpoint: {}", recorder_log(&env));
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!runner.is_finished(), "the checkpoint came before the container's end");
        let calls = profile_calls(&path);
        assert!(calls.iter().any(|c| c == "mkdir" || c == "mkdirat"), "{calls:?}");
        let out = runner.join().unwrap();
        assert!(out.stdout.contains("done"), "{out:?}");
    });
    let recs = wait_recorded(&env, 1);
    assert_eq!(recs[0]["recording"]["state"], "written", "{recs:?}");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let obs = &v["comment"]["hardrunRecording"]["observed"];
    assert_eq!(obs["runs"], 1, "{obs}");
    assert!(recorder_log(&env).contains("checkpoint: wrote"), "{}", recorder_log(&env));
}
