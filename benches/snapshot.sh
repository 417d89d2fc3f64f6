#!/usr/bin/env bash
# Benchmark: `backup now` against what users do today, in the same run, on the same databases.
#
# Usage: benches/snapshot.sh [SIZE_MIB ...]        (default: 100 1024)
#   RUNS=N        timed runs per mode and size, after one warm-up each (default 3)
#   BENCH_DIR=D   scratch folder (default target/bench); generated databases are kept there
#   SHARED=D      folder with make-db.py and baselines.sh (default ../shared/bench)
#   BASE_BIN=B    another build of `backup` (say, of the previous release) timed beside this one
#                 as "base", to see what a change costs
#
# For every size it makes a WAL database with make-db.py, then times, interleaved:
#   backup   `backup now` with `[snapshot] compression = "gzip"` (release build, no remote: the
#            snapshot alone, like the baselines)
#   zstd     the same with `[snapshot] compression = "zstd"`, the default (level 3, multithreaded)
#   shell    baselines.sh shell: sqlite3 .backup + tar czf
#   gzip6    baselines.sh gzip6: gzip -6 of the database file (the size yardstick)
# and prints medians (min-max) of wall time and peak RSS, output sizes, and the targets:
#   wall(backup) <= 0.3 x wall(shell); size(backup) <= 1.05 x size(gzip6); peak RSS <= 64 MiB;
#   wall(zstd) <= 0.15 x wall(shell); size(zstd) <= size(gzip6); peak RSS <= 64 MiB.
set -euo pipefail
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(100 1024)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

report=$BENCH_DIR/report.md
{
  echo "| size | mode | wall s median (min-max) | peak RSS MiB median | output MiB |"
  echo "|---|---|---|---|---|"
} > "$report"
verdicts=()

for size in "${SIZES[@]}"; do
    work=$BENCH_DIR/$size
    db=$work/db.db
    make_db_once "$work" "$size"
    cat > "$work/backup.toml" <<TOML
[[database]]
name = "app"
path = "db.db"
[local]
dir = "snapshots"
TOML
    sed 's/^dir = "snapshots"$/dir = "snapshots-zstd"/' "$work/backup.toml" > "$work/zstd.toml"
    printf '[snapshot]\ncompression = "zstd"\n' >> "$work/zstd.toml"
    printf '[snapshot]\ncompression = "gzip"\n' >> "$work/backup.toml"
    rm -f "$work"/times.*
    for i in $(seq 0 "$RUNS"); do
        for mode in ${BASE_BIN:+base} backup zstd shell gzip6; do
            target=$work/times.$mode; [ "$i" -eq 0 ] && target=$work/warmup.$mode
            case $mode in
                backup) rm -rf "$work/snapshots"
                        measure "$target" "$BIN" --config "$work/backup.toml" --no-progress now ;;
                zstd)   rm -rf "$work/snapshots-zstd"
                        measure "$target" "$BIN" --config "$work/zstd.toml" --no-progress now ;;
                base)   rm -rf "$work/snapshots"
                        measure "$target" "$BASE_BIN" --config "$work/backup.toml" --no-progress now ;;
                *)      measure "$target" bash "$SHARED/baselines.sh" "$mode" "$db" "$work/scratch" ;;
            esac
        done
        echo "size $size: run $i of $RUNS done" >&2
    done
    out_backup=$(stat -c %s "$work"/snapshots/*.tar.gz)
    out_shell=$(stat -c %s "$work/scratch/shell.tar.gz")
    out_gzip6=$(stat -c %s "$work/scratch/gzip6.gz")
    out_zstd=$(stat -c %s "$work"/snapshots-zstd/*.tar.zst)
    python3 - "$work" "$size" "$out_backup" "$out_shell" "$out_gzip6" "$out_zstd" >> "$report" <<'PY'
import statistics, sys
work, size = sys.argv[1], sys.argv[2]
outs = dict(zip(("backup", "shell", "gzip6", "zstd"), map(int, sys.argv[3:7])))
med = {}
import os
modes = ["backup", "zstd", "shell", "gzip6"] + (["base"] if os.path.exists(f"{work}/times.base") else [])
outs["base"] = outs["backup"]
for mode in modes:
    rows = [tuple(map(float, l.split())) for l in open(f"{work}/times.{mode}")]
    walls = [r[0] for r in rows]; rss = [r[1] / 1024 for r in rows]
    med[mode] = (statistics.median(walls), statistics.median(rss))
    print(f"| {size} MiB | {mode} | {med[mode][0]:.2f} ({min(walls):.2f}-{max(walls):.2f}) "
          f"| {med[mode][1]:.0f} | {outs[mode] / 2**20:.1f} |")
with open(f"{work}/verdict", "w") as f:
    wr = med["backup"][0] / med["shell"][0]
    sr = outs["backup"] / outs["gzip6"]
    rss = med["backup"][1]
    f.write(f"{size} MiB: wall {wr:.3f}x shell (target <= 0.3) {'PASS' if wr <= 0.3 else 'FAIL'}; "
            f"size {sr:.4f}x gzip -6 (target <= 1.05) {'PASS' if sr <= 1.05 else 'FAIL'}; "
            f"peak RSS {rss:.0f} MiB (target <= 64) {'PASS' if rss <= 64 else 'FAIL'}\n")
    zr = med["zstd"][0] / med["shell"][0]
    zs = outs["zstd"] / outs["gzip6"]
    zrss = med["zstd"][1]
    f.write(f"{size} MiB zstd: wall {zr:.3f}x shell (target <= 0.15) {'PASS' if zr <= 0.15 else 'FAIL'}; "
            f"size {zs:.4f}x gzip -6 (target <= 1) {'PASS' if zs <= 1 else 'FAIL'}; "
            f"peak RSS {zrss:.0f} MiB (target <= 64) {'PASS' if zrss <= 64 else 'FAIL'}\n")
    if "base" in med:
        f.write(f"{size} MiB: wall {med['backup'][0] / med['base'][0]:.3f}x the BASE_BIN build "
                f"({med['backup'][0]:.2f} s against {med['base'][0]:.2f} s)\n")
PY
    verdicts+=("$(cat "$work/verdict")")
done

echo
cat "$report"
echo
printf '%s\n' "${verdicts[@]}"
echo "(medians of $RUNS runs after one warm-up each; machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB)"
