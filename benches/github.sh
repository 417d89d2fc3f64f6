#!/usr/bin/env bash
# Benchmark: the GitHub remote against the directory remote, in the same run, on the same
# database: `backup now` (snapshot + push) and `backup restore latest` from the remote into an
# empty folder (download + every restore check).
#
# Usage: benches/github.sh [SIZE_MIB]        (default: 1024)
#   RUNS=N        timed runs per mode, after one warm-up each (default 3)
#   BENCH_DIR=D   scratch folder (default target/bench); generated databases are kept there
#   SHARED=D      folder with make-db.py (default ../shared/bench)
#
# The GitHub side is the project's fake GitHub (tests/fake_github.rs) on loopback, started from
# the test binary. Targets: wall(github) <= 1.2 x wall(dir) for both; peak RSS <= 64 MiB (push).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench}
RUNS=${RUNS:-3}
SIZE=${1:-1024}
[ -x /usr/bin/time ] || { echo "GNU time is needed (apt-get install time)" >&2; exit 2; }

cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml"
BIN=$ROOT/target/release/backup
work=$BENCH_DIR/$SIZE
db=$work/db.db
mkdir -p "$work"
if [ ! -f "$db" ]; then
    echo "making a ${SIZE} MiB database..." >&2
    python3 "$SHARED/make-db.py" "$db" "$SIZE" > "$work/db.json"
fi
g=$work/github
rm -rf "$g"; mkdir -p "$g"

# The fake GitHub, fed from a FIFO so it lives until this script ends.
mkfifo "$g/stdin"
(cd "$ROOT" && cargo test --release --locked --quiet --test cli -- --ignored --nocapture --exact remote_github::serve_fake_github < "$g/stdin" > "$g/fake.out" 2>&1) &
exec 3> "$g/stdin"
trap 'exec 3>&-' EXIT
for _ in $(seq 600); do grep -q '^FAKE_GITHUB ' "$g/fake.out" 2>/dev/null && break; sleep 0.5; done
read -r _ API REPO TOKEN < <(grep '^FAKE_GITHUB ' "$g/fake.out")
export GH_ENTERPRISE_TOKEN=$TOKEN

for mode in dir github; do
    mkdir -p "$g/$mode"
    if [ $mode = dir ]; then
        mkdir -p "$g/dir/remote"
        remote=$'type = "dir"\npath = "remote"'
    else
        remote=$'type = "github"\nrepo = "'$REPO$'"\napi_url = "'$API'"'
    fi
    printf '[[database]]\nname = "app"\npath = "%s"\n[local]\ndir = "snapshots"\n[remote]\n%s\n' "$db" "$remote" > "$g/$mode/push.toml"
    printf '[[database]]\nname = "app"\npath = "live/app.db"\n[local]\ndir = "restore-snapshots"\n[remote]\n%s\n' "$remote" > "$g/$mode/restore.toml"
done

measure() {
    local out=$1; shift
    /usr/bin/time -f "%e %M" -a -o "$out" "$@" > /dev/null
}
for i in $(seq 0 "$RUNS"); do
    for mode in dir github; do
        m=$g/$mode
        t=$m/times; [ "$i" -eq 0 ] && t=$m/warmup
        rm -rf "$m/snapshots"
        measure "$t.push" "$BIN" --config "$m/push.toml" --no-progress now
        rm -rf "$m/live" "$m/restore-snapshots" "$m"/pre_restore_*
        measure "$t.restore" "$BIN" --config "$m/restore.toml" --no-progress restore latest
    done
    echo "run $i of $RUNS done" >&2
done

python3 - "$g" "$SIZE" <<'PY'
import statistics, sys
g, size = sys.argv[1], sys.argv[2]
print("| size | step | dir wall s | github wall s | github/dir | dir RSS MiB | github RSS MiB |")
print("|---|---|---|---|---|---|---|")
verdicts = []
for step in ("push", "restore"):
    med = {}
    for mode in ("dir", "github"):
        rows = [tuple(map(float, l.split())) for l in open(f"{g}/{mode}/times.{step}")]
        med[mode] = (statistics.median(r[0] for r in rows), statistics.median(r[1] / 1024 for r in rows))
    ratio = med["github"][0] / med["dir"][0]
    print(f"| {size} MiB | {step} | {med['dir'][0]:.2f} | {med['github'][0]:.2f} | {ratio:.3f}x | {med['dir'][1]:.0f} | {med['github'][1]:.0f} |")
    rss_ok = step != "push" or med["github"][1] <= 64
    verdicts.append(f"{step}: github {ratio:.3f}x dir (target <= 1.2) {'PASS' if ratio <= 1.2 else 'FAIL'}; "
                    f"peak RSS {med['github'][1]:.0f} MiB {'PASS' if rss_ok else 'FAIL'}")
print()
print("\n".join(verdicts))
PY
echo "(medians of $RUNS runs after one warm-up each; machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB)"
