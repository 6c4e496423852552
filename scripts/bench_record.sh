#!/bin/sh
# Recording overhead: the cost of one system call in a container recorded by
# hardrun (seccomp user notification to `hardrun __recorder`) against the same
# container run by bare runc and under the recorded profile enforced.
#
#   scripts/bench_record.sh [CALLS_PER_RUN (default 100000)] [RUNS (default 5)]
#
# Needs root, runc, gcc with static glibc (libc6-dev), jq. Builds hardrun in release
# mode (CARGO_TARGET_DIR is honoured). Prints one line per side and run, then the
# medians, as `side call ns-per-call`.
set -eu
calls=${1:-100000}
runs=${2:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build --release --quiet)
hardrun=$target/release/hardrun
work=$(mktemp -d /tmp/hardrun-bench-record.XXXXXX)
trap 'for id in $(runc --root "$work/root" list -q 2>/dev/null); do runc --root "$work/root" delete -f "$id"; done; rm -rf "$work"' EXIT
mkdir -p "$work/b/rootfs/bin" "$work/pol"
gcc -O2 -static -o "$work/b/rootfs/bin/loop" "$repo/benches/fixtures/syscall_loop.c"
(cd "$work/b" && runc spec)
jq --arg n "$calls" '.process.args=["/bin/loop",$n] | .process.terminal=false' "$work/b/config.json" >"$work/b/config.orig"
cat >"$work/config.yaml" <<YAML
runtime: $(command -v runc)
auditLog: $work/audit.jsonl
stateDir: $work/state
policyDir: $work/pol
YAML
export HARDRUN_CONFIG="$work/config.yaml"
record='apiVersion: hardrun.dev/v1alpha1
kind: Recording
metadata: {name: bench}
spec: {output: bench}'
enforce="apiVersion: hardrun.dev/v1alpha1
kind: Policy
metadata: {name: bench-enforce}
spec:
  seccomp: {profile: localhost/$work/state/recordings/bench.json}"

one() { # side runtime -> stdout of the container
  cp "$work/b/config.orig" "$work/b/config.json"
  "$2" --root "$work/root" run -b "$work/b" "bench-$1-$$" </dev/null
}

: >"$work/results"
for i in $(seq 1 "$runs"); do
  rm -f "$work/pol/"*
  one runc runc | sed "s/^/runc /" >>"$work/results"
  printf '%s\n' "$record" >"$work/pol/record.yaml"
  one record "$hardrun" | sed "s/^/recording /" >>"$work/results"
  # The recorder writes the profile after the container's end.
  for _ in $(seq 1 100); do [ -f "$work/state/recordings/bench.json" ] && break; sleep 0.05; done
  rm -f "$work/pol/"*
  printf '%s\n' "$enforce" >"$work/pol/enforce.yaml"
  one enforce "$hardrun" | sed "s/^/recorded-profile /" >>"$work/results"
done
sed 's/=/ /' "$work/results"
echo "--- medians (ns per call)"
sed 's/=/ /' "$work/results" | sort -k1,2 -k3n | awk '
  { key=$1" "$2; v[key, ++n[key]]=$3 }
  END { for (k in n) { m=n[k]; printf "%s %s\n", k, v[k, int((m+1)/2)] } }' | sort
