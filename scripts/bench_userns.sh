#!/bin/sh
# Whole-process cost of per-pod user namespaces (issue #4): N pod sandboxes created
# and deleted through hardrun under a policy with `userNamespace.mode: pod` and
# under the same policy without it. Prints hardrun's own time per create (the audit
# record's durationUs) and the wall time of create + delete, medians.
# Usage: scripts/bench_userns.sh [HARDRUN] [N]   (as root; default target/release/hardrun, 30)
set -eu
HARDRUN=${1:-target/release/hardrun}
N=${2:-30}
HARDRUN=$(realpath "$HARDRUN")
# BENCH_DIR: where the state, audit log and bundle live (default /var/tmp, a disk).
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/hardrun-bench-userns.XXXXXX")
trap 'rm -rf "$W"' EXIT
chmod 711 "$W"
mkdir -p "$W/b/rootfs/bin" "$W/b/rootfs/proc" "$W/b/rootfs/sys" "$W/b/rootfs/dev" "$W/b/rootfs/etc"
cp /bin/busybox "$W/b/rootfs/bin/"
ln -s busybox "$W/b/rootfs/bin/sleep"
runc spec --bundle "$W/b"
jq '.process.terminal=false | .process.args=["sleep","30"]
    | .annotations={"io.kubernetes.cri.container-type":"sandbox"}' "$W/b/config.json" > "$W/spec.json"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run() { # $1 = label, $2 = userNamespace block or "", $3 = extra node config
  mkdir -p "$W/$1/policies"
  printf 'runtime: /usr/sbin/runc\nauditLog: %s\nstateDir: %s\npolicyDir: %s\n%s' \
    "$W/$1/audit.jsonl" "$W/$1/state" "$W/$1/policies" "${3:-}" > "$W/$1/config.yaml"
  printf 'apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  match: {containerTypes: [sandbox]}\n  noNewPrivileges: true\n%s' \
    "$2" > "$W/$1/policies/p.yaml"
  : > "$W/$1/wall"
  i=0
  while [ $i -lt "$N" ]; do
    id="bench-$1-$i"
    jq --arg id "$id" '.annotations["io.kubernetes.cri.sandbox-id"]=$id' "$W/spec.json" > "$W/b/config.json"
    t0=$(date +%s%N)
    HARDRUN_CONFIG="$W/$1/config.yaml" "$HARDRUN" --root "$W/$1/root" create --bundle "$W/b" "$id" </dev/null >/dev/null 2>&1
    HARDRUN_CONFIG="$W/$1/config.yaml" "$HARDRUN" --root "$W/$1/root" delete -f "$id" </dev/null >/dev/null 2>&1
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 )) >> "$W/$1/wall"
    i=$((i + 1))
  done
  own=$(jq -r 'select(.command=="create") | .durationUs' "$W/$1/audit.jsonl" | median)
  wall=$(median < "$W/$1/wall")
  echo "$1: hardrun per create ${own} us (median durationUs); create+delete ${wall} us (median wall)"
}

run plain ""
run userns '  userNamespace: {mode: pod}
'
SHM=$(mktemp -d /dev/shm/hardrun-bench-userns.XXXXXX)
run userns-table-on-tmpfs '  userNamespace: {mode: pod}
' "userNamespaces: {stateDir: $SHM/userns}
"
rm -rf "$SHM"
