#!/usr/bin/env bash
# Runs hardrun's fuzz targets (fuzz/, cargo-fuzz + libFuzzer on the nightly toolchain).
#   scripts/fuzz.sh                 # every target, 600 s each
#   scripts/fuzz.sh 60 policy argv  # 60 s each, two targets
# The corpus grows in fuzz/corpus/<target> (not committed); crashes land in
# fuzz/artifacts/<target>/. Copy a crash into fuzz/regressions/<target>/ once fixed:
# tests/fuzz_regressions.rs replays it on every test run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
# shellcheck source=scripts/cargo-env.sh
. ../scripts/cargo-env.sh
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(argv policy spec_patch seccomp_profile audit_log verifier_reply)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t: ${seconds}s" >&2
    # -rss_limit_mb: the parsers cap their inputs; a 2 GB process is a bug too.
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 2>&1 |
        tee "corpus/$t.log" | grep -E '^(#[0-9]+.*(DONE|pulse)|stat::|==[0-9]+==|SUMMARY)' || true
done
