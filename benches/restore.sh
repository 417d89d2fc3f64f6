#!/usr/bin/env bash
# Benchmark: `backup restore` against what users do today, in the same run, on the same archive.
#
# Usage: benches/restore.sh [SIZE_MIB ...]        (default: 1024; 0 skips the database case)
#   RUNS=N        timed runs per mode, after one warm-up each (default 3)
#   FILES="N ..." the many-files case for each N (default "25000 50000"; empty skips it)
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
#
# The many-files case: an app with a small database and an included queue folder of N small
# JSON files (1,000 per subfolder), then, interleaved: `backup now`; `backup verify latest`;
# `backup restore latest --yes` over the live files, every one of them changed since the
# snapshot (N set aside, N put in place); and the same restore on a machine with no live files
# (N put in place). Targets: verify and each restore <= 2 x the snapshot's own time, and time per
# file at the largest N <= 1.5 x that at the smallest (linear growth).
set -euo pipefail
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(1024)
FILES=${FILES-25000 50000}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

report=$BENCH_DIR/restore-report.md
{
  echo "| size | mode | wall s median (min-max) | peak RSS MiB median |"
  echo "|---|---|---|---|"
} > "$report"
verdicts=()

for size in "${SIZES[@]}"; do
    [ "$size" = 0 ] && continue
    work=$BENCH_DIR/$size
    db=$work/db.db
    make_db_once "$work" "$size"
    r=$work/restore
    rm -rf "$r"; mkdir -p "$r"
    # gzip, as the tables in the README were measured (and as the tar xzf baseline reads).
    printf '[[database]]\nname = "app"\npath = "../db.db"\n[local]\ndir = "snapshots"\n[snapshot]\ncompression = "gzip"\n' > "$r/snap.toml"
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

many_report=$BENCH_DIR/many-files-report.md
{
  echo "| files | command | wall s median (min-max) | peak RSS MiB median | x snapshot |"
  echo "|---|---|---|---|---|"
} > "$many_report"
per_file=()
for files in $FILES; do
    m=$BENCH_DIR/files-$files
    if [ ! -f "$m/app/backup.toml" ]; then
        echo "making an app with $files included files..." >&2
        rm -rf "$m"; mkdir -p "$m/app/data/queue"
        python3 - "$m/app" "$files" <<'PY'
import json, os, sqlite3, sys
app, n = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(os.path.join(app, "data/app.db"))
db.execute("PRAGMA journal_mode = wal")
db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, body TEXT)")
db.executemany("INSERT INTO jobs (body) VALUES (?)", [("job " * 20,)] * 1000)
db.commit()
for i in range(n):
    folder = os.path.join(app, f"data/queue/{i // 1000:03d}")
    if i % 1000 == 0:
        os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"job-{i:06d}.json"), "w") as f:
        json.dump({"job": i, "task": i % 97, "action": "notify", "note": "lorem ipsum " * 10}, f)
PY
        printf '[[database]]\nname = "app"\npath = "data/app.db"\n[[include]]\npath = "data/queue"\n[local]\ndir = "snapshots"\n' > "$m/app/backup.toml"
    fi
    rm -f "$m"/times.* "$m"/warmup.*
    for i in $(seq 0 "$RUNS"); do
        for mode in now verify restore fresh; do
            target=$m/times.$mode; [ "$i" -eq 0 ] && target=$m/warmup.$mode
            rm -rf "$m/app"/pre_restore_* "$m/app/data/queue-away"
            case $mode in
                # Every live file other than the snapshot's copy: all of them go aside.
                restore) find "$m/app/data/queue" -type f -exec sh -c 'for f; do echo changed >> "$f"; done' _ {} + ;;
                # A machine with no live files: the queue folder is elsewhere.
                fresh)   mv "$m/app/data/queue" "$m/app/data/queue-away" ;;
            esac
            # The clean-up's own writes are flushed before the clock starts: a restore's one
            # file-system sync would otherwise pay for them.
            sync
            case $mode in
                now)     rm -rf "$m/app/snapshots"
                         measure "$target" "$BIN" --config "$m/app/backup.toml" --no-progress now ;;
                verify)  measure "$target" "$BIN" --config "$m/app/backup.toml" --no-progress verify latest ;;
                restore|fresh)
                         measure "$target" "$BIN" --config "$m/app/backup.toml" --no-progress restore latest --yes ;;
            esac
        done
        rm -rf "$m/app"/pre_restore_* "$m/app/data/queue-away"
        echo "files $files: run $i of $RUNS done" >&2
    done
    per_file+=("$(python3 - "$m" "$files" "$many_report" <<'PY'
import statistics, sys
work, files, report = sys.argv[1], int(sys.argv[2]), sys.argv[3]
med = {}
for mode in ("now", "verify", "restore", "fresh"):
    rows = [tuple(map(float, l.split())) for l in open(f"{work}/times.{mode}")]
    walls = [r[0] for r in rows]; rss = [r[1] / 1024 for r in rows]
    med[mode] = (statistics.median(walls), statistics.median(rss), min(walls), max(walls))
with open(report, "a") as out:
    names = {"now": "now", "verify": "verify", "restore": "restore (all changed)", "fresh": "restore (fresh machine)"}
    for mode in ("now", "verify", "restore", "fresh"):
        w, r, lo, hi = med[mode]
        out.write(f"| {files} | {names[mode]} | {w:.2f} ({lo:.2f}-{hi:.2f}) | {r:.0f} | {w / med['now'][0]:.2f}x |\n")
with open(f"{work}/verdict", "w") as f:
    for mode in ("verify", "restore", "fresh"):
        ratio = med[mode][0] / med["now"][0]
        f.write(f"{files} files {names[mode]}: {ratio:.2f}x the snapshot (target <= 2.0) {'PASS' if ratio <= 2.0 else 'FAIL'}\n")
print(f"{files} {med['verify'][0] / files} {med['restore'][0] / files} {med['fresh'][0] / files}")
PY
)")
    verdicts+=("$(cat "$m/verdict")")
done
if [ ${#per_file[@]} -ge 2 ]; then
    verdicts+=("$(printf '%s\n' "${per_file[@]}" | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
(n0, v0, r0, f0), (n1, v1, r1, f1) = rows[0], rows[-1]
for name, a, b in (("verify", float(v0), float(v1)), ("restore (all changed)", float(r0), float(r1)), ("restore (fresh machine)", float(f0), float(f1))):
    g = b / a
    verdict = "PASS" if g <= 1.5 else "FAIL"
    print(f"{name} time per file at {n1} files: {g:.2f}x that at {n0} (target <= 1.5, linear) {verdict}")
')")
fi

echo
cat "$report"
[ -n "$FILES" ] && { echo; cat "$many_report"; }
echo
printf '%s\n' "${verdicts[@]}"
echo "(medians of $RUNS runs after one warm-up each; machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB)"
