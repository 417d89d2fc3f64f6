#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 10) from its seeds in fixtures/fuzz/<target>/.
# New inputs go to a temporary corpus, so the seeds stay as committed; a crash leaves its input
# in fuzz/artifacts/<target>/ and fails the script.
#
# Needs nightly Rust and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-10}
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
targets=$(cargo +nightly fuzz list)
[ -n "$targets" ] || { echo "cargo fuzz lists no targets" >&2; exit 1; }
for target in $targets; do
    mkdir -p "$corpus/$target"
    if ! out=$(cargo +nightly fuzz run "$target" "$corpus/$target" "../fixtures/fuzz/$target" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 2>&1); then
        echo "$out" | tail -40 >&2
        echo "fuzz target $target failed; its input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    echo "fuzz $target: $(echo "$out" | grep -Eo 'Done [0-9]+ runs in [0-9]+ second\(s\)' | tail -1)"
done
