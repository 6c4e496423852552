#!/usr/bin/env bash
# Installs everything the tests need (scripts/setup.sh), then runs every test target.
# This is what CI runs (.ci/run). With arguments, runs `cargo test ARGS` instead of
# every target, e.g.
#   scripts/test.sh --test controls
# The integration tests run real runc and containerd, so run this as root.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
. scripts/cargo-env.sh
if ((EUID != 0)); then
    echo "test.sh: not root: the tests that need runc and containerd will fail or skip" >&2
fi
if (($# == 0)); then
    cargo test --all-targets
else
    cargo test "$@"
fi
