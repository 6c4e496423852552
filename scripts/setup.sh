#!/usr/bin/env bash
# Installs what hardrun's demo and tests need on Debian 12. Idempotent: installs only
# packages that are missing (apt-get update first, only then), never prompts.
#
#   scripts/setup.sh            everything the tests need (runc, busybox-static, containerd,
#                               docker-registry, umoci, skopeo, jq, hyperfine, protoc, iproute2, a C linker)
#   scripts/setup.sh --minimal  only what scripts/demo.sh needs (runc, busybox-static, jq, protoc, a C linker)
#
# Rust is expected to be installed already (rustup); this script never downloads toolchains.
set -euo pipefail

# gcc + libc6-dev: rustc links through `cc`. jq: the demo edits config.json and prints JSON.
MINIMAL_PACKAGES=(runc busybox-static jq gcc libc6-dev protobuf-compiler)
# protobuf-compiler: containerd-client (digest lookup) and k8s-cri (CRI tests) compile protos with protoc.
# iproute2 + util-linux: the CRI tests' CNI plugin (ip, nsenter) and the userns tests (unshare).
TEST_PACKAGES=(containerd docker-registry umoci skopeo hyperfine iproute2 util-linux)

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

main() {
    local packages=("${MINIMAL_PACKAGES[@]}" "${TEST_PACKAGES[@]}")
    case "${1:-}" in
        "") ;;
        --minimal) packages=("${MINIMAL_PACKAGES[@]}") ;;
        -h | --help) usage; return 0 ;;
        *) echo "setup.sh: unknown argument: $1" >&2; usage >&2; return 2 ;;
    esac
    install_missing "${packages[@]}"
    check_rust
    check_tools
}

is_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii "* ]]
}

install_missing() {
    local missing=() p
    for p in "$@"; do
        is_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        echo "setup: packages present: $*"
        return 0
    fi
    if ((EUID != 0)); then
        echo "setup: missing packages: ${missing[*]}; run this script as root to install them" >&2
        return 1
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null
    apt-get install -y -q "${missing[@]}" </dev/null
}

check_rust() {
    # A non-login shell (CI, sudo, ssh -c) may lack ~/.cargo/bin on PATH.
    # shellcheck source=scripts/cargo-env.sh
    . "$(dirname "$0")/cargo-env.sh"
    if ! command -v cargo >/dev/null; then
        echo "setup: cargo not found (looked on PATH and in \$HOME/.cargo/env); install Rust with rustup first" >&2
        return 1
    fi
    echo "setup: $(cargo --version)"
}

check_tools() {
    local f
    for f in /usr/sbin/runc /bin/busybox; do
        [[ -x "$f" ]] || { echo "setup: $f is missing after install" >&2; return 1; }
    done
}

main "$@"
