#!/usr/bin/env bash
# Benchmark: `backup restore` against what users do today, in the same run, on the same archive.
#
# Usage: benches/restore.sh [SIZE_MIB ...]        (default: 1024)
#   RUNS=N        timed runs per mode, after one warm-up each (default 3)
#   BENCH_DIR=D   scratch folder (default target/bench); generated databases are kept there
#   SHARED=D      folder with make-db.py and baselines.sh (default ../shared/bench)
#
# For every size it makes (or reuses) a WAL database with make-db.py, takes one snapshot of it,
# then times, interleaved, into an empty live folder:
#   backup   `backup restore <tag>`: sha256 of the archive and of every file, manifest, schema
#            guard, integrity_check, foreign_key_check, row counts, journaled swap
#   shell    baselines.sh restore-shell: tar xzf + sqlite3 'PRAGMA integrity_check'
# and prints medians (min-max) of wall time and peak RSS, and the targets:
#   wall(backup) <= 1.0 x wall(shell); peak RSS <= 128 MiB.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench}
RUNS=${RUNS:-3}
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(1024)
[ -x "$SHARED/make-db.py" ] || { echo "make-db.py not found in $SHARED (set SHARED=)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "GNU time is needed (apt-get install time)" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "sqlite3 is needed by the baseline (apt-get install sqlite3)" >&2; exit 2; }

cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml"
BIN=$ROOT/target/release/backup

measure() {
    local out=$1; shift
    /usr/bin/time -f "%e %M" -a -o "$out" "$@" > /dev/null
}

report=$BENCH_DIR/restore-report.md
{
  echo "| size | mode | wall s median (min-max) | peak RSS MiB median |"
  echo "|---|---|---|---|"
} > "$report"
verdicts=()

for size in "${SIZES[@]}"; do
    work=$BENCH_DIR/$size
    db=$work/db.db
    mkdir -p "$work"
    if [ ! -f "$db" ] || [ ! -f "$work/db.json" ]; then
        echo "making a ${size} MiB database..." >&2
        python3 "$SHARED/make-db.py" "$db" "$size" > "$work/db.json"
    fi
    r=$work/restore
    rm -rf "$r"; mkdir -p "$r"
    printf '[[database]]\nname = "app"\npath = "../db.db"\n[local]\ndir = "snapshots"\n' > "$r/snap.toml"
    printf '[[database]]\nname = "app"\npath = "live/app.db"\n[local]\ndir = "snapshots"\n' > "$r/restore.toml"
    "$BIN" --config "$r/snap.toml" --no-progress now > /dev/null
    tag=$(basename "$(ls "$r"/snapshots/*.tar.gz)" .tar.gz)
    # The baseline restores the archive the shell baseline makes.
    bash "$SHARED/baselines.sh" shell "$db" "$r/scratch" > /dev/null
    rm -f "$r"/times.*
    for i in $(seq 0 "$RUNS"); do
        for mode in backup shell; do
            target=$r/times.$mode; [ "$i" -eq 0 ] && target=$r/warmup.$mode
            case $mode in
                backup) rm -rf "$r/live" "$r"/pre_restore_*
                        measure "$target" "$BIN" --config "$r/restore.toml" --no-progress restore "$tag" ;;
                shell)  measure "$target" bash "$SHARED/baselines.sh" restore-shell "$db" "$r/scratch" ;;
            esac
        done
        echo "size $size: run $i of $RUNS done" >&2
    done
    python3 - "$r" "$size" >> "$report" <<'PY'
import statistics, sys
work, size = sys.argv[1], sys.argv[2]
med = {}
for mode in ("backup", "shell"):
    rows = [tuple(map(float, l.split())) for l in open(f"{work}/times.{mode}")]
    walls = [r[0] for r in rows]; rss = [r[1] / 1024 for r in rows]
    med[mode] = (statistics.median(walls), statistics.median(rss))
    print(f"| {size} MiB | {mode} | {med[mode][0]:.2f} ({min(walls):.2f}-{max(walls):.2f}) | {med[mode][1]:.0f} |")
with open(f"{work}/verdict", "w") as f:
    wr = med["backup"][0] / med["shell"][0]
    rss = med["backup"][1]
    f.write(f"{size} MiB restore: wall {wr:.3f}x tar xzf + integrity_check (target <= 1.0) "
            f"{'PASS' if wr <= 1.0 else 'FAIL'}; peak RSS {rss:.0f} MiB (target <= 128) "
            f"{'PASS' if rss <= 128 else 'FAIL'}\n")
PY
    verdicts+=("$(cat "$r/verdict")")
done

echo
cat "$report"
echo
printf '%s\n' "${verdicts[@]}"
echo "(medians of $RUNS runs after one warm-up each; machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB)"
