#!/usr/bin/env bash
# Benchmark: differential snapshots against full ones, in the same run, on the same databases.
#
# Usage: benches/diff.sh [SIZE_MIB ...]        (default: 1024)
#   RUNS=N          timed runs per size, after one warm-up (default 3)
#   COMPRESSION=C   zstd (default, as the tool's) or gzip, for both kinds of snapshot
#   BENCH_DIR=D     scratch folder (default target/bench); generated databases are kept there
#   SHARED=D        folder with make-db.py (default ../shared/bench)
#
# For every size it makes a WAL database with make-db.py and, once, a copy of it with 1% of its
# pages changed by spread updates (random rows of `messages` and `tasks`, one character of a
# text column each, until 1% of the pages differ, counted page by page against the original).
# Then, per run, with a folder remote:
#   full          `backup now` of the original database (a full snapshot, pushed)
#   diff          `backup run` after the changes (a differential of that full, pushed)
#   restore-full  `backup restore <full> --to DIR`
#   restore-diff  `backup restore <diff> --to DIR` (the full's archive plus the differential's)
# and prints medians of wall time and peak RSS, the bytes each pushed, the targets
#   bytes(diff) <= 0.03 x bytes(full); wall(diff) <= 0.35 x wall(full);
#   wall(restore-diff) <= 1.3 x wall(restore-full); peak RSS <= 64 MiB,
# and the bytes pushed per day at 1% of the pages changed an hour: hourly fulls against hourly
# differentials with a daily full. Differentials are cumulative (each holds every page changed
# since the full), so hour h of a day holds about 1 - 0.99^h of the pages when each hour changes
# a random 1%; that estimate scales the measured 1% differential. Real apps rewrite the same hot
# pages more often, which makes differentials smaller still.
set -euo pipefail
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(1024)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COMPRESSION=${COMPRESSION:-zstd}
ext=tar.gz; [ "$COMPRESSION" = zstd ] && ext=tar.zst

report=$BENCH_DIR/diff-report.md
{
  echo "| size | step | wall s median (min-max) | peak RSS MiB median | pushed MiB |"
  echo "|---|---|---|---|---|"
} > "$report"
verdicts=()
costs=()

# Makes (once) $1/changed.db: $1/db.db with 1% of its pages changed by spread updates.
make_changed_once() {
    local work=$1
    [ -f "$work/changed.db" ] && [ -f "$work/changed.json" ] && return
    echo "changing 1% of the pages..." >&2
    python3 - "$work" > "$work/changed.json" <<'PY'
import json, random, shutil, sqlite3, sys
work = sys.argv[1]
original, changed = f"{work}/original.db", f"{work}/changed.db"
con = sqlite3.connect(f"{work}/db.db")
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
shutil.copyfile(f"{work}/db.db", original)
shutil.copyfile(original, changed)
con = sqlite3.connect(changed)
page = con.execute("PRAGMA page_size").fetchone()[0]
pages = con.execute("PRAGMA page_count").fetchone()[0]
want = pages // 100
rng = random.Random(18)
tables = [("messages", "body"), ("tasks", "title")]
ids = {t: con.execute(f"SELECT min(id), max(id) FROM {t}").fetchone() for t, _ in tables}

def differing():
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    n = 0
    with open(original, "rb") as a, open(changed, "rb") as b:
        while True:
            x, y = a.read(page), b.read(page)
            if not x and not y:
                return n
            n += x != y

done = 0
while (found := differing()) < want:
    batch = max(1, (want - found) // 2)
    for _ in range(batch):
        table, column = tables[0] if rng.random() < 0.8 else tables[1]
        low, high = ids[table]
        letter = chr(65 + rng.randrange(26))
        con.execute(
            f"UPDATE {table} SET {column} = substr({column}, 1, length({column}) - 1) || ? WHERE id = ?",
            (letter, rng.randint(low, high)),
        )
    con.commit()
    done += batch
con.close()
print(json.dumps({"pages": pages, "changed_pages": found, "rows_updated": done}))
PY
}

for size in "${SIZES[@]}"; do
    work=$BENCH_DIR/$size
    make_db_once "$work" "$size"
    make_changed_once "$work"
    cat > "$work/diff.toml" <<TOML
[[database]]
name = "app"
path = "app.db"
[local]
dir = "diff-snapshots"
[remote]
type = "dir"
path = "diff-remote"
[snapshot]
compression = "$COMPRESSION"
TOML
    rm -f "$work"/diff-times.* "$work"/diff-sizes
    for i in $(seq 0 "$RUNS"); do
        suffix=""; [ "$i" -eq 0 ] && suffix=.warmup
        rm -rf "$work/diff-snapshots" "$work/diff-remote" "$work"/restored-* "$work"/app.db*
        mkdir "$work/diff-remote"
        cp "$work/original.db" "$work/app.db"
        "$BIN" --config "$work/diff.toml" --no-progress init > /dev/null
        measure "$work/diff-times.full$suffix" "$BIN" --config "$work/diff.toml" --no-progress now
        full_tag=$(basename "$(ls "$work"/diff-remote/*."$ext")" ".$ext")
        full_bytes=$(stat -c %s "$work/diff-remote/$full_tag.$ext")
        cp "$work/changed.db" "$work/app.db"
        measure "$work/diff-times.diff$suffix" "$BIN" --config "$work/diff.toml" --no-progress run
        diff_tag=$(ls "$work"/diff-remote/*."$ext" | grep -v "$full_tag" | xargs basename -s ".$ext")
        diff_bytes=$(stat -c %s "$work/diff-remote/$diff_tag.$ext")
        measure "$work/diff-times.restore-full$suffix" "$BIN" --config "$work/diff.toml" --no-progress \
            restore "$full_tag" --to "$work/restored-full"
        measure "$work/diff-times.restore-diff$suffix" "$BIN" --config "$work/diff.toml" --no-progress \
            restore "$diff_tag" --to "$work/restored-diff" 2> /dev/null
        [ -z "$suffix" ] && echo "$full_bytes $diff_bytes" >> "$work/diff-sizes"
        echo "size $size: run $i of $RUNS done" >&2
    done
    python3 - "$work" "$size" >> "$report" <<'PY'
import json, statistics, sys
work, size = sys.argv[1], int(sys.argv[2])
changed = json.load(open(f"{work}/changed.json"))
sizes = [tuple(map(int, l.split())) for l in open(f"{work}/diff-sizes")]
full_bytes = statistics.median(s[0] for s in sizes)
diff_bytes = statistics.median(s[1] for s in sizes)
med = {}
for step in ("full", "diff", "restore-full", "restore-diff"):
    rows = [tuple(map(float, l.split())) for l in open(f"{work}/diff-times.{step}")]
    walls = [r[0] for r in rows]; rss = [r[1] / 1024 for r in rows]
    med[step] = (statistics.median(walls), statistics.median(rss))
    pushed = {"full": full_bytes, "diff": diff_bytes}.get(step)
    print(f"| {size} MiB | {step} | {med[step][0]:.2f} ({min(walls):.2f}-{max(walls):.2f}) "
          f"| {med[step][1]:.0f} | {'-' if pushed is None else f'{pushed / 2**20:.2f}'} |")
b = diff_bytes / full_bytes
w = med["diff"][0] / med["full"][0]
r = med["restore-diff"][0] / med["restore-full"][0]
rss = max(m[1] for m in med.values())
ok = lambda c: "PASS" if c else "FAIL"
with open(f"{work}/diff-verdict", "w") as f:
    f.write(f"{size} MiB ({changed['changed_pages']} of {changed['pages']} pages changed): "
            f"bytes {b:.4f}x the full (target <= 0.03) {ok(b <= 0.03)}; "
            f"wall {w:.3f}x `now` (target <= 0.35) {ok(w <= 0.35)}; "
            f"restore {r:.3f}x (target <= 1.3) {ok(r <= 1.3)}; "
            f"peak RSS {rss:.0f} MiB (target <= 64) {ok(rss <= 64)}\n")
# Bytes pushed per day at 1% of the pages changed an hour.
hourly_fulls = 24 * full_bytes
cumulative = sum((1 - 0.99 ** h) / 0.01 for h in range(1, 24))
with_diffs = full_bytes + diff_bytes * cumulative
with open(f"{work}/diff-cost", "w") as f:
    f.write(f"| {size} MiB | {full_bytes / 2**20:.1f} MiB | {diff_bytes / 2**20:.2f} MiB "
            f"| {hourly_fulls / 2**30:.2f} GiB | {with_diffs / 2**30:.2f} GiB "
            f"| {with_diffs / hourly_fulls:.2f}x |\n")
PY
    verdicts+=("$(cat "$work/diff-verdict")")
    costs+=("$(cat "$work/diff-cost")")
done

echo
cat "$report"
echo
printf '%s\n' "${verdicts[@]}"
echo
echo "Bytes pushed per day, 1% of the pages changed an hour ($COMPRESSION):"
echo "| database | full archive | 1% differential | hourly fulls | differentials, daily full | ratio |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${costs[@]}"
echo "(medians of $RUNS runs after one warm-up; machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB)"
