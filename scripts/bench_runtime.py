#!/usr/bin/env python3
"""Whole-process benchmark: hardrun against bare runc, A/B interleaved in one run.

  scripts/bench_runtime.py [--state-iterations 200] [--create-iterations 100] ...

Every iteration runs each side once, rotating the order, so machine noise hits all
sides alike:

  state      `state ID` of an existing container, runc vs hardrun: hardrun's passthrough
             path (argv parse, node config, find runc, execve).
  lifecycle  containers from a busybox bundle with a pod's bind mounts, env and CRI
             annotations, whose spec the embedded baseline policy must change (Docker's 14
             capabilities incl. CAP_NET_RAW, noNewPrivileges false); config.json is
             restored before every create, so every hardrun create mutates. Sides: runc,
             hardrun, and runc given the spec hardrun would write ("runc-hardened"), which
             splits hardrun's cost into the policy's effect on runc and hardrun's own work.
             Timed per side: `create` + `delete` (the issue's figure), `create` +
             `kill KILL` + `delete`, and `create` alone.
  overhead   hardrun's own cost, free of runc's variance: the same `state`, `delete` and
             `create` command lines with the node config's runtime set to /bin/true,
             against /bin/true run directly. The difference is everything hardrun adds
             (its exec and startup, policy work, audit line, spec write).

runc 1.1 deletes a container still in the `created` state by SIGKILL plus a fixed
>= 100 ms sleep (killContainer), so `create` + `delete` is mostly that constant; the
kill-first variant (what containerd does: kill, wait, delete) shows hardrun's cost
without it. Every hardrun invocation (create, kill, delete) goes through hardrun, as
containerd's shim would send it.

Needs root, runc, /bin/busybox (busybox-static) and cargo (unless --hardrun is given).
Prints a markdown table; --json FILE also writes every sample. Python 3.11 stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "benches" / "fixtures" / "cri-config.json"
NAMESPACE = "k8s.io"
# Docker's (and containerd's) default capability set; CAP_NET_RAW is not in PSS baseline.
DOCKER_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--state-iterations", type=int, default=200, help="iterations of `state` (default 200)")
    p.add_argument("--create-iterations", type=int, default=100, help="iterations of create/kill/delete (default 100)")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations before each benchmark (default 5)")
    p.add_argument("--runc", default="/usr/sbin/runc", help="the real runc (default /usr/sbin/runc)")
    p.add_argument("--hardrun", help="hardrun binary to use (default: scripts/build-release.sh of this repo)")
    p.add_argument(
        "--run-dir",
        default="/dev/shm" if os.path.ismount("/dev/shm") else tempfile.gettempdir(),
        help="parent of the bundles and the runc --root; default /dev/shm: tmpfs, like containerd's /run",
    )
    p.add_argument(
        "--state-dir",
        default=tempfile.gettempdir(),
        help="parent of the node config and audit log; default the temp dir (a disk, like /var/log)",
    )
    p.add_argument("--debug-log", action="store_true", help="set debugLog in the node config (hardrun's tracing)")
    p.add_argument(
        "--policy",
        type=Path,
        action="append",
        help="install this policy file in the node's policy dir instead of using the embedded baseline "
        "(repeatable; e.g. policies/restricted.yaml)",
    )
    p.add_argument("--uid", type=int, help="run the container process as this uid (restricted.yaml needs non-root)")
    p.add_argument("--only", choices=["state", "lifecycle", "overhead"], help="run one benchmark only")
    p.add_argument("--json", type=Path, help="also write all samples (ms) and the summary to this file")
    p.add_argument("--keep", action="store_true", help="keep the temp directories (for inspection)")
    p.add_argument("--report", type=Path, metavar="JSON", help="only print the table of an earlier --json file")
    return p.parse_args()


def build_hardrun() -> Path:
    """The node build (scripts/build-release.sh: release, static-pie); honours CARGO_TARGET_DIR."""
    print("building hardrun: scripts/build-release.sh", file=sys.stderr)
    out = subprocess.run(
        [str(REPO / "scripts" / "build-release.sh")], cwd=REPO, check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    path = Path(out.strip().splitlines()[-1])
    if not path.is_absolute():
        path = REPO / path
    if not path.is_file():
        sys.exit(f"bench_runtime: build-release.sh reported {path}, which does not exist")
    return path


@dataclass
class Env:
    runc: str
    hardrun: str
    run_dir: Path
    state_dir: Path
    # Bind-mount sources, like /var/lib/kubelet/pods/<uid>: not under /dev (or the
    # baseline's host-path rules deny the writable ones).
    pod_dir: Path
    root: Path
    log: Path
    audit: Path
    # HARDRUN_CONFIG for the real runc, and for runtime /bin/true (the overhead benchmark).
    environ: dict[str, str] = field(default_factory=dict)
    environ_true: dict[str, str] = field(default_factory=dict)
    # The container process's uid (None: the spec's root).
    uid: int | None = None

    def argv(self, runtime: str, *args: str) -> list[str]:
        # The global flags containerd's shim passes on every call.
        return [runtime, "--root", str(self.root), "--log", str(self.log), "--log-format", "json", *args]


def setup(args: argparse.Namespace, hardrun: Path) -> Env:
    run_dir = Path(tempfile.mkdtemp(prefix="hardrun-bench.", dir=args.run_dir))
    state_dir = Path(tempfile.mkdtemp(prefix="hardrun-bench.", dir=args.state_dir))
    env = Env(
        runc=args.runc,
        hardrun=str(hardrun),
        run_dir=run_dir,
        state_dir=state_dir,
        pod_dir=Path(tempfile.mkdtemp(prefix="hardrun-bench-pod.", dir=tempfile.gettempdir())),
        # Mirrors containerd's /run/containerd/runc/<namespace>: hardrun reads the namespace from it.
        root=run_dir / "runc" / NAMESPACE,
        log=run_dir / "runc.log",
        audit=state_dir / "audit.jsonl",
        uid=args.uid,
    )
    env.environ = node_config(args, state_dir, "config.yaml", args.runc, env.audit)
    env.environ_true = node_config(args, state_dir, "config-true.yaml", "/bin/true", audit_true(env))
    return env


def node_config(args: argparse.Namespace, state_dir: Path, name: str, runtime: str, audit: Path) -> dict[str, str]:
    """Writes a node config; returns the environment that selects it."""
    config = [
        f"runtime: {runtime}",
        f"policyDir: {state_dir / 'policies.d'}",  # absent: the embedded baseline applies
        f"auditLog: {audit}",
        f"stateDir: {state_dir / 'state'}",
    ]
    if args.debug_log:
        config.append(f"debugLog: {state_dir / 'debug.log'}")
    for policy in args.policy or []:
        (state_dir / "policies.d").mkdir(exist_ok=True)
        shutil.copy2(policy, state_dir / "policies.d" / policy.name)
    (state_dir / name).write_text("\n".join(config) + "\n")
    return dict(os.environ, HARDRUN_CONFIG=str(state_dir / name))


def audit_true(env: Env) -> Path:
    return env.state_dir / "audit-true.jsonl"


def make_bundle(env: Env, name: str) -> tuple[Path, bytes]:
    """A busybox bundle whose spec the baseline must change; returns (bundle, config.json bytes)."""
    bundle = env.run_dir / name
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    (bundle / "rootfs" / "proc").mkdir()
    shutil.copy2("/bin/busybox", bundle / "rootfs" / "bin" / "busybox")
    subprocess.run([env.runc, "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    proc = spec["process"]
    proc["terminal"] = False
    proc["args"] = ["/bin/busybox", "sleep", "3600"]
    proc["noNewPrivileges"] = False
    if env.uid is not None:
        proc["user"] = {"uid": env.uid, "gid": env.uid}
    proc["capabilities"] = {k: list(DOCKER_CAPS) for k in ("bounding", "effective", "permitted")}
    spec["hostname"] = "bench"
    spec["mounts"] += pod_mounts(env.pod_dir)
    if FIXTURE.exists():
        # A Kubernetes-sized spec: the CRI annotations and the env of a pod in a busy namespace.
        cri = json.loads(FIXTURE.read_text())
        proc["env"] = cri["process"]["env"]
        spec["annotations"] = cri["annotations"]
    original = json.dumps(spec, separators=(",", ":")).encode()
    restore(bundle, original)
    return bundle, original


def pod_mounts(pod: Path) -> list[dict]:
    """The bind mounts the kubelet and containerd give every pod container (hosts,
    hostname, resolv.conf, termination log, /dev/shm, a ConfigMap, the service account
    token), with sources in a temp dir: hardrun checks each against its host-path rules."""
    binds = [
        ("/etc/hosts", "etc-hosts", "rw"),
        ("/etc/hostname", "hostname", "rw"),
        ("/etc/resolv.conf", "resolv.conf", "rw"),
        ("/dev/termination-log", "termination-log", "rw"),
        ("/dev/shm", "shm/", "rw"),
        ("/etc/app", "volumes/configmap/", "ro"),
        ("/var/run/secrets/kubernetes.io/serviceaccount", "volumes/projected/", "ro"),
    ]
    mounts = []
    for dest, name, mode in binds:
        source = pod / name
        if name.endswith("/"):
            source.mkdir(parents=True, exist_ok=True)
        else:
            source.parent.mkdir(parents=True, exist_ok=True)
            source.touch()
        mounts.append({"destination": dest, "type": "bind", "source": str(source), "options": ["rbind", "rprivate", mode]})
    return mounts


def restore(bundle: Path, original: bytes) -> None:
    (bundle / "config.json").write_bytes(original)


def run(env: Env, argv: list[str], environ: dict[str, str] | None = None) -> float:
    """Runs argv with stdio on /dev/null (runc create hands its stdio to the container); ms."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0),
    ]
    start = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, environ or env.environ, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = env.log.read_text()[-2000:] if env.log.exists() else "(no log)"
        sys.exit(f"bench_runtime: {' '.join(argv)} exited {code}; runc log:\n{tail}")
    return elapsed


def interleaved(iterations: int, warmup: int, one, sides=("runc", "hardrun")) -> dict[str, list[float]]:
    """Calls one(side) for every side each iteration, rotating the order (and reversing
    it every other round), so no side always runs first or right after another."""
    samples: dict[str, list[float]] = {}
    n = len(sides)
    for i in range(warmup + iterations):
        order = sides[i % n :] + sides[: i % n]
        if (i // n) % 2:
            order = order[::-1]
        for side in order:
            result = one(side)
            if i >= warmup:
                for key, ms in result.items():
                    samples.setdefault(key, []).append(ms)
    return samples


def bench_state(env: Env, args: argparse.Namespace) -> dict[str, list[float]]:
    bundle, _ = make_bundle(env, "bundle-state")
    cid = "bench-state"
    run(env, env.argv(env.runc, "create", "--bundle", str(bundle), cid))
    try:
        runtimes = {"runc": env.runc, "hardrun": env.hardrun}
        return interleaved(
            args.state_iterations, args.warmup, lambda side: {side: run(env, env.argv(runtimes[side], "state", cid))}
        )
    finally:
        subprocess.run(env.argv(env.runc, "delete", "--force", cid), check=False)


def hardened(env: Env, bundle: Path) -> bytes:
    """The spec hardrun would hand runc (`hardrun explain --format spec`), compact."""
    explain = [env.hardrun, "explain", "--bundle", str(bundle)]
    out = subprocess.run([*explain, "--format", "spec"], env=env.environ, stdout=subprocess.PIPE, check=False)
    if out.returncode != 0:
        why = subprocess.run(explain, env=env.environ, stdout=subprocess.PIPE, text=True, check=False).stdout
        sys.exit(f"bench_runtime: the baseline does not let the bench container start:\n{why}")
    return json.dumps(json.loads(out.stdout), separators=(",", ":")).encode()


def bench_lifecycle(env: Env, args: argparse.Namespace) -> dict[str, list[float]]:
    """Sides: runc with the original spec, hardrun (which hardens it and execs runc), and
    runc given the already-hardened spec: hardrun minus the last is what the policy's
    changes cost runc itself; hardrun minus runc (hardened) is hardrun's own work."""
    sides = ("runc", "hardrun", "runc-hardened")
    bundles = {side: make_bundle(env, f"bundle-{side}") for side in sides}
    bundles["runc-hardened"] = (bundles["runc-hardened"][0], hardened(env, bundles["runc-hardened"][0]))
    runtimes = {"runc": env.runc, "hardrun": env.hardrun, "runc-hardened": env.runc}
    counter = iter(range(1 << 30))

    def create(side: str) -> tuple[str, float]:
        bundle, original = bundles[side]
        restore(bundle, original)  # so every hardrun create has to mutate again
        cid = f"bench-{side}-{next(counter)}"
        argv = env.argv(runtimes[side], "create", "--bundle", str(bundle), "--pid-file", str(bundle / "pid"), cid)
        return cid, run(env, argv)

    def one(side: str) -> dict[str, float]:
        rt = runtimes[side]
        cid, created = create(side)
        deleted = run(env, env.argv(rt, "delete", cid))
        cid, created_k = create(side)
        pid = int((bundles[side][0] / "pid").read_text())
        killed = run(env, env.argv(rt, "kill", cid, "KILL"))
        wait_dead(pid)  # as the shim waits for the exit; untimed, the same for every side
        deleted_k = run(env, env.argv(rt, "delete", cid))
        return {
            f"{side}/create": created,
            f"{side}/create+delete": created + deleted,
            f"{side}/create+kill+delete": created_k + killed + deleted_k,
        }

    return interleaved(args.create_iterations, args.warmup, one, sides)


def wait_dead(pid: int, timeout: float = 5.0) -> None:
    """Until `pid` is gone or a zombie: what runc's delete counts as stopped. A delete
    that still found it alive would take runc's >= 100 ms kill-and-poll path."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # The state letter follows the command name's closing parenthesis.
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.0005)
    sys.exit(f"bench_runtime: container init {pid} still alive {timeout} s after SIGKILL")


def bench_overhead(env: Env, args: argparse.Namespace) -> dict[str, list[float]]:
    bundle, original = make_bundle(env, "bundle-overhead")
    state = ["state", "bench-none"]
    delete = ["delete", "bench-none"]  # hardrun appends a (not fsync'd) lifecycle record
    create = ["create", "--bundle", str(bundle), "--pid-file", str(bundle / "pid"), "bench-none"]

    def one(side: str) -> dict[str, float]:
        restore(bundle, original)
        if side == "runc":  # the baseline side: the runtime itself, /bin/true
            return {
                "true/state": run(env, env.argv("/bin/true", *state)),
                "true/delete": run(env, env.argv("/bin/true", *delete)),
                "true": run(env, env.argv("/bin/true", *create)),
            }
        return {
            "hardrun/state": run(env, env.argv(env.hardrun, *state), env.environ_true),
            "hardrun/delete": run(env, env.argv(env.hardrun, *delete), env.environ_true),
            "hardrun": run(env, env.argv(env.hardrun, *create), env.environ_true),
        }

    return interleaved(args.create_iterations * 2, args.warmup, one)


def check_enforced(audit: Path, creates: int) -> None:
    """Every hardrun create must have mutated the spec, or the benchmark measured less."""
    lines = audit.read_text().splitlines() if audit.exists() else []
    # `start`/`delete` leave lifecycle records too; the creates are what must have mutated.
    records = [r for r in map(json.loads, lines) if r.get("command") == "create"]
    decisions = {r.get("decision") for r in records}
    if len(records) != creates or decisions != {"mutated"}:
        sys.exit(f"bench_runtime: expected {creates} `mutated` audit records, got {len(records)}: {decisions}")
    in_process = [r["durationUs"] / 1000 for r in records if "durationUs" in r]
    if in_process:
        print(
            f"hardrun's own evaluation (audit durationUs, before the audit write): "
            f"median {statistics.median(in_process):.3f} ms",
            file=sys.stderr,
        )


def remove_containers(env: Env) -> None:
    """Deletes whatever an interrupted run left in the private runc root."""
    if not env.root.exists():
        return
    ids = subprocess.run([env.runc, "--root", str(env.root), "list", "-q"], stdout=subprocess.PIPE, text=True).stdout
    for cid in ids.split():
        subprocess.run([env.runc, "--root", str(env.root), "delete", "--force", cid], check=False)


def pct(data: list[float], q: float) -> float:
    return statistics.quantiles(data, n=100, method="inclusive")[int(q) - 1]


def summary_rows(results: dict[str, dict[str, list[float]]]) -> list[dict]:
    rows = []
    specs = [
        ("state", "state (passthrough)", "runc", "hardrun", "abs", "≤ +1 ms"),
        ("lifecycle", "create+delete (enforce)", "runc/create+delete", "hardrun/create+delete", "pct", "≤ +2 %"),
        ("lifecycle", "create+delete: hardrun's own cost", "runc-hardened/create+delete", "hardrun/create+delete", "pct", ""),
        ("lifecycle", "create+kill+delete (enforce)", "runc/create+kill+delete", "hardrun/create+kill+delete", "pct", ""),
        ("lifecycle", "create+kill+delete: hardrun's own cost", "runc-hardened/create+kill+delete", "hardrun/create+kill+delete", "pct", ""),
        ("lifecycle", "create (enforce)", "runc/create", "hardrun/create", "pct", ""),
        ("lifecycle", "create: the hardened spec's cost in runc", "runc/create", "runc-hardened/create", "pct", ""),
        ("lifecycle", "create: hardrun's own cost", "runc-hardened/create", "hardrun/create", "pct", ""),
        ("overhead", "state, runtime /bin/true", "true/state", "hardrun/state", "abs", ""),
        ("overhead", "delete, runtime /bin/true", "true/delete", "hardrun/delete", "abs", ""),
        ("overhead", "create, runtime /bin/true", "true", "hardrun", "abs", ""),
    ]
    for bench, label, a, b, kind, target in specs:
        if bench not in results:
            continue
        ra, rb = results[bench][a], results[bench][b]
        side = lambda key: key.split("/")[0]  # noqa: E731 -- "runc-hardened/create" -> "runc-hardened"
        ma, mb = statistics.median(ra), statistics.median(rb)
        paired = statistics.median(y - x for x, y in zip(ra, rb))
        if kind == "abs":
            delta, paired_s = f"{mb - ma:+.2f} ms", f"{paired:+.2f} ms"
        else:
            delta, paired_s = f"{(mb - ma) / ma * 100:+.1f} % ({mb - ma:+.2f} ms)", f"{paired:+.2f} ms"
        rows.append(
            {
                "benchmark": label,
                "a": side(a),
                "b": side(b),
                "n": len(ra),
                "a_median": ma,
                "a_p95": pct(ra, 95),
                "b_median": mb,
                "b_p95": pct(rb, 95),
                "delta": delta,
                "paired": paired_s,
                "target": target,
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    """A is the baseline, B what is compared with it; Δ is B − A."""
    print("| benchmark | A → B | n | A median | A p95 | B median | B p95 | Δ median | paired Δ median | target |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(
            f"| {r['benchmark']} | {r['a']} → {r['b']} | {r['n']} | {r['a_median']:.2f} ms | {r['a_p95']:.2f} ms "
            f"| {r['b_median']:.2f} ms | {r['b_p95']:.2f} ms | {r['delta']} | {r['paired']} | {r['target']} |"
        )


def main() -> None:
    args = parse_args()
    if args.report:
        print_table(summary_rows(json.loads(args.report.read_text())["samples_ms"]))
        return
    if os.geteuid() != 0:
        sys.exit("bench_runtime: run as root (runc needs it)")
    for tool in (args.runc, "/bin/busybox"):
        if not os.access(tool, os.X_OK):
            sys.exit(f"bench_runtime: {tool} is missing (scripts/setup.sh --minimal installs it)")
    hardrun = Path(args.hardrun) if args.hardrun else build_hardrun()
    env = setup(args, hardrun)
    print(f"hardrun {hardrun}; runc {args.runc}; run dir {env.run_dir}; audit {env.audit}", file=sys.stderr)
    results: dict[str, dict[str, list[float]]] = {}
    try:
        if args.only in (None, "state"):
            results["state"] = bench_state(env, args)
        if args.only in (None, "lifecycle"):
            results["lifecycle"] = bench_lifecycle(env, args)
            check_enforced(env.audit, 2 * (args.create_iterations + args.warmup))
        if args.only in (None, "overhead"):
            results["overhead"] = bench_overhead(env, args)
            check_enforced(audit_true(env), args.create_iterations * 2 + args.warmup)
    finally:
        remove_containers(env)
        if not args.keep:
            for d in (env.run_dir, env.state_dir, env.pod_dir):
                shutil.rmtree(d, ignore_errors=True)
        else:
            print(f"kept {env.run_dir}, {env.state_dir} and {env.pod_dir}", file=sys.stderr)
    rows = summary_rows(results)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"summary": rows, "samples_ms": results}, indent=1))


if __name__ == "__main__":
    main()
