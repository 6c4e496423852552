#!/usr/bin/env bash
# hardrun in one minute: runs the same busybox container with bare runc and then through
# hardrun (embedded baseline policy), and shows the container's own view of its privileges,
# `hardrun explain`, and the audit record. Run as root on Debian 12:
#   ./scripts/demo.sh
# Everything it creates lives in one mktemp directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh

RUNC=/usr/sbin/runc
# Docker's (and containerd's) default capability set: 14 capabilities, CAP_NET_RAW included.
DOCKER_CAPS='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW",
"CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT",
"CAP_KILL","CAP_AUDIT_WRITE"]'
# capability(7) numbers 0..40, for decoding /proc/self/status masks.
CAP_NAMES=(chown dac_override dac_read_search fowner fsetid kill setgid setuid setpcap linux_immutable
    net_bind_service net_broadcast net_admin net_raw ipc_lock ipc_owner sys_module sys_rawio sys_chroot
    sys_ptrace sys_pacct sys_admin sys_boot sys_nice sys_resource sys_time sys_tty_config mknod lease
    audit_write audit_control setfcap mac_override mac_admin syslog wake_alarm block_suspend audit_read
    perfmon bpf checkpoint_restore)

heading() { printf '\n== %s\n' "$*"; }

# Lines past 200 characters end in "…" (the seccomp profile is one long patch line).
cut_long() { awk '{ if (length($0) > 200) print substr($0, 1, 200) "…"; else print }'; }

main() {
    if ((EUID != 0)); then
        echo "demo.sh: run as root (runc needs it)" >&2
        exit 1
    fi
    ./scripts/setup.sh --minimal
    heading "building hardrun (cargo build --release)"
    cargo build --release --bin hardrun
    HARDRUN="$(target_dir)/release/hardrun"

    WORK="$(mktemp -d /tmp/hardrun-demo.XXXXXX)"
    ID="hardrun-demo-$$"
    trap cleanup EXIT

    write_node_config
    make_bundle "$WORK/bundle-runc"
    cp -a "$WORK/bundle-runc" "$WORK/bundle-hardrun"

    heading "hardrun version"
    HARDRUN_CONFIG="$WORK/config.yaml" "$HARDRUN" version

    heading "node config (HARDRUN_CONFIG=$WORK/config.yaml)"
    cat "$WORK/config.yaml"

    heading "the bundle: busybox, Docker's 14 default capabilities, noNewPrivileges false"
    jq -c '.process | {args, noNewPrivileges, bounding: .capabilities.bounding}' "$WORK/bundle-runc/config.json"

    heading "before: $RUNC run (what the container sees)"
    BEFORE="$(run_container "$RUNC" "$WORK/bundle-runc" "$ID-runc")"
    show_status "$BEFORE"

    heading "hardrun explain --bundle ... (what hardrun would do; long lines and the config.json listing cut)"
    # Exit 0: the container would start; 1: denied. Captured whole, then cut: closing the
    # pipe early would cut hardrun off mid-write.
    local explained
    explained="$("$HARDRUN" explain --config "$WORK/config.yaml" --bundle "$WORK/bundle-hardrun")"
    sed '/^config.json:/q' <<<"$explained" | cut_long

    heading "after: hardrun run (same argv as runc; hardrun edits config.json, then execs runc)"
    AFTER="$(HARDRUN_CONFIG="$WORK/config.yaml" run_container "$HARDRUN" "$WORK/bundle-hardrun" "$ID-hardrun")"
    show_status "$AFTER"

    heading "what changed"
    summarize "$BEFORE" "$AFTER"

    heading "audit record ($WORK/audit.jsonl; patch values over 300 bytes shortened here)"
    jq '.patch |= map(if has("value") and ((.value | tojson | length) > 300)
                      then .value = "<\(.value | tojson | length) bytes>" else . end)' "$WORK/audit.jsonl"
}

target_dir() {
    cargo metadata --format-version 1 --no-deps | jq -r .target_directory
}

write_node_config() {
    # policyDir does not exist, so the embedded baseline policy applies.
    cat >"$WORK/config.yaml" <<YAML
runtime: $RUNC
policyDir: $WORK/policies.d
auditLog: $WORK/audit.jsonl
stateDir: $WORK/state
YAML
}

make_bundle() {
    local bundle="$1"
    mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc"
    cp /bin/busybox "$bundle/rootfs/bin/busybox"
    (cd "$bundle" && "$RUNC" spec)
    # The container prints its own privileges and exits.
    jq --argjson caps "$DOCKER_CAPS" '
        .process.terminal = false
        | .process.args = ["/bin/busybox", "grep", "-E", "^(CapEff|CapBnd|NoNewPrivs|Seccomp):", "/proc/self/status"]
        | .process.noNewPrivileges = false
        | .process.capabilities = {bounding: $caps, effective: $caps, permitted: $caps}
        | .hostname = "demo"' "$bundle/config.json" >"$bundle/config.json.new"
    mv "$bundle/config.json.new" "$bundle/config.json"
}

# run_container RUNTIME BUNDLE ID: runs in the foreground; the container's stdout is ours.
# The root mirrors containerd's /run/containerd/runc/<namespace>: hardrun reads "demo" from it.
run_container() {
    "$1" --root "$WORK/runc/demo" run --bundle "$2" "$3" </dev/null
}

decode_caps() {
    local mask=$((16#$1)) i names=()
    for i in "${!CAP_NAMES[@]}"; do
        if (((mask >> i) & 1)); then names+=("${CAP_NAMES[$i]}"); fi
    done
    echo "${#names[@]}: ${names[*]}"
}

show_status() {
    local key value
    while IFS=$' \t' read -r key value; do
        case "$key" in
            CapEff: | CapBnd:) printf '%-11s %s  (%s)\n' "$key" "$value" "$(decode_caps "$value")" ;;
            *) printf '%-11s %s\n' "$key" "$value" ;;
        esac
    done <<<"$1"
}

field() { awk -v k="$1:" '$1 == k { print $2 }' <<<"$2"; }

summarize() {
    local before after removed=() i
    before=$((16#$(field CapEff "$1")))
    after=$((16#$(field CapEff "$2")))
    for i in "${!CAP_NAMES[@]}"; do
        if (((before >> i) & 1 && !((after >> i) & 1))); then removed+=("${CAP_NAMES[$i]}"); fi
    done
    echo "effective capabilities removed: ${removed[*]:-none}"
    echo "NoNewPrivs: $(field NoNewPrivs "$1") -> $(field NoNewPrivs "$2")"
    echo "Seccomp:    $(field Seccomp "$1") -> $(field Seccomp "$2")  (0: no filter, 2: filter)"
}

cleanup() {
    local id
    for id in "$ID-runc" "$ID-hardrun"; do
        "$RUNC" --root "$WORK/runc/demo" delete --force "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}

main "$@"
