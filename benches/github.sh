#!/usr/bin/env bash
# Benchmark: the GitHub remote against the directory remote, in the same run, on the same
# database: `backup now` (snapshot + push) and `backup restore latest` from the remote into an
# empty folder (download + every restore check).
#
# Usage: benches/github.sh [SIZE_MIB]        (default: 1024)
#        benches/github.sh slow-link         (the slow-link case, below)
#   RUNS=N        timed runs per mode, after one warm-up each (default 3)
#   BENCH_DIR=D   scratch folder (default target/bench); generated databases are kept there
#   SHARED=D      folder with make-db.py (default ../shared/bench)
#
# The GitHub side is the project's fake GitHub (tests/fake_github.rs) on loopback, served by
# `examples/fake_github.rs`. Targets: wall(github) <= 1.2 x wall(dir) for both; peak RSS <= 64 MiB (push).
#
# slow-link: a 300 MiB archive (SLOW_MIB) pushed over a 2 MiB/s fake link (about 150 s): it must
# go up on the first try, with goodput >= 90% of the link and peak RSS <= 64 MiB. Then a second
# push whose upload the fake stops reading halfway: the stall must be caught within stall_secs
# (STALL_SECS, default 10) + 5 s, and the retry must succeed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench}
RUNS=${RUNS:-3}
SIZE=${1:-1024}
[ -x /usr/bin/time ] || { echo "GNU time is needed (apt-get install time)" >&2; exit 2; }

cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml" --bin backup --example fake_github
# BACKUP_BIN times another build of `backup` (benches/compare.sh); the fake is always this tree's.
BIN=${BACKUP_BIN:-$ROOT/target/release/backup}
FAKE=$ROOT/target/release/examples/fake_github

if [ "${1:-}" = slow-link ]; then
    RATE=$((2 << 20)); MIB=${SLOW_MIB:-300}; STALL=${STALL_SECS:-10}
    s=$BENCH_DIR/slow-link
    rm -rf "$s"; mkdir -p "$s/data"
    python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("create table notes (id integer primary key, text)"); c.commit()' "$s/data/app.db"
    # Random bytes: the archive is as big as the link has to carry.
    head -c $((MIB << 20)) /dev/urandom > "$s/data/blob.bin"
    mkfifo "$s/stdin"
    "$FAKE" --link-rate "$RATE" --log < "$s/stdin" > "$s/fake.out" 2>&1 &
    exec 4> "$s/stdin"
    trap 'exec 4>&-' EXIT
    for _ in $(seq 1200); do grep -q '^FAKE_GITHUB ' "$s/fake.out" 2>/dev/null && break; sleep 0.5; done
    read -r _ API REPO TOKEN < <(grep '^FAKE_GITHUB ' "$s/fake.out")
    export GH_ENTERPRISE_TOKEN=$TOKEN
    printf '[[database]]\nname = "app"\npath = "data/app.db"\n[[include]]\npath = "data/blob.bin"\n[local]\ndir = "snapshots"\n[remote]\ntype = "github"\nrepo = "%s"\napi_url = "%s"\nstall_secs = %s\n' "$REPO" "$API" "$STALL" > "$s/backup.toml"

    echo "slow link: pushing ${MIB} MiB at 2 MiB/s..." >&2
    /usr/bin/time -f "%e %M" -o "$s/push.time" "$BIN" --config "$s/backup.toml" --no-progress -v now > /dev/null 2> "$s/push.log" || { cat "$s/push.log" >&2; exit 1; }
    sleep 0.3; cp "$s/fake.out" "$s/fake.push.out"
    echo "slow link: pushing again, the fake stops reading halfway..." >&2
    echo stall-upload >&4
    "$BIN" --config "$s/backup.toml" --no-progress -v now > /dev/null 2> "$s/stall.log" || { cat "$s/stall.log" >&2; exit 1; }
    sleep 0.3
    python3 - "$s" "$RATE" "$STALL" <<'PY'
import datetime, glob, os, re, sys
s, rate, stall = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
archives = sorted(glob.glob(f"{s}/snapshots/*.tar.gz") + glob.glob(f"{s}/snapshots/*.tar.zst"))
size = os.path.getsize(archives[0])
wall, rss_kib = open(f"{s}/push.time").read().split()
push_log = open(f"{s}/push.log").read()
push_secs = float(re.search(r"pushed 1 snapshot\(s\) to .* in ([0-9.]+)s", push_log).group(1))
first = open(f"{s}/fake.push.out").read()
uploads = len(re.findall(r"^LOG \d+ POST \S+/assets -> ", first, re.M))
goodput = size / push_secs
rss = int(rss_kib) / 1024
print("| case | archive | push | goodput | of link | uploads | peak RSS |")
print("|---|---|---|---|---|---|---|")
print(f"| 2 MiB/s link | {size / 2**20:.0f} MiB | {push_secs:.1f} s | {goodput / 2**20:.2f} MiB/s | {100 * goodput / rate:.1f}% | {uploads} | {rss:.0f} MiB |")
verdicts = [
    f"first try: {uploads} upload(s) {'PASS' if uploads == 1 else 'FAIL'}",
    f"goodput {100 * goodput / rate:.1f}% of the link (target >= 90) {'PASS' if goodput >= 0.9 * rate else 'FAIL'}",
    f"peak RSS {rss:.0f} MiB (target <= 64) {'PASS' if rss <= 64 else 'FAIL'}",
]
fake = open(f"{s}/fake.out").read()[len(first):]
stalled = re.search(r"^LOG (\d+) POST \S+/assets -> stalled mid-upload", fake, re.M)
retried = re.search(r"^LOG (\d+) POST \S+/assets -> 201", fake, re.M)
caught = re.search(r"^(\S+Z) +INFO GitHub: the transfer stalled", open(f"{s}/stall.log").read(), re.M)
if stalled and retried and caught:
    t_stall = int(stalled.group(1)) / 1000
    t_caught = datetime.datetime.fromisoformat(caught.group(1).replace("Z", "+00:00")).timestamp()
    late = t_caught - t_stall
    print(f"\nstall mid-upload: caught {late:.1f} s after the fake stopped reading (stall_secs = {stall}), retry answered 201")
    verdicts.append(f"stall caught within stall_secs + 5 s: {'PASS' if late <= stall + 5 else 'FAIL'}; retry succeeded: PASS")
else:
    verdicts.append(f"stall case: FAIL (stalled={bool(stalled)}, caught={bool(caught)}, retried={bool(retried)})")
print()
print("\n".join(verdicts))
PY
    echo "(machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB)"
    exit 0
fi
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
"$FAKE" < "$g/stdin" > "$g/fake.out" 2>&1 &
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
