#!/usr/bin/env bash
# Builds the hardrun binary a node runs: release profile, statically linked (static-pie).
# Prints the binary's path on stdout; cargo's progress goes to stderr.
#
# Why static: hardrun is started for every runc call, and on this kind of VM the dynamic
# loader's relocation and libgcc's CPU probing cost ~0.3 ms per call (docs/performance.md).
# Why --target: with an explicit target, RUSTFLAGS reach only the target crates; without
# it cargo would also build the proc-macro crates (clap_derive, serde_derive) with
# `+crt-static`, which cannot be loaded into rustc.
#   ./scripts/build-release.sh            # -> target/<host triple>/release/hardrun
#   HARDRUN_DYNAMIC=1 ./scripts/build-release.sh   # a plain `cargo build --release`
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh

target_dir=${CARGO_TARGET_DIR:-target}
if [[ -n ${HARDRUN_DYNAMIC:-} ]]; then
    cargo build --release --bin hardrun >&2
    echo "$target_dir/release/hardrun"
    exit 0
fi
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" cargo build --release --bin hardrun --target "$host" >&2
echo "$target_dir/$host/release/hardrun"
