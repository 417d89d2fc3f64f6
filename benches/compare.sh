#!/usr/bin/env bash
# Benchmark: this tree's `backup` against another build of it (say, before a change), by running
# one of the other bench scripts for each build in turn, so both meet the same machine state.
#
# Usage: benches/compare.sh BASE_BIN SCRIPT [ARGS...]
#   e.g. benches/compare.sh ../old/target/release/backup benches/restore.sh
#   ROUNDS=N   rounds (default 3); each round runs SCRIPT once with RUNS=1 for BASE_BIN, then
#              once for this tree's build, so the builds alternate
#
# Every table row the script prints (`| key | key | number | …`) is matched between the builds
# by its first two cells; for each numeric cell it prints the median over the rounds for base and
# for this tree, and their ratio. The scripts' baselines (shell, gzip6) run with both builds, so
# their rows show the machine's own noise (a ratio near 1.00 is expected there).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 2 ] || { echo "usage: benches/compare.sh BASE_BIN SCRIPT [ARGS...]" >&2; exit 2; }
BASE_BIN=$(realpath "$1"); shift
SCRIPT=$1; shift
[ -x "$BASE_BIN" ] || { echo "no program at $BASE_BIN" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
OUT=${BENCH_DIR:-$ROOT/target/bench}/compare
rm -rf "$OUT"; mkdir -p "$OUT"

cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml"
NEW_BIN=$ROOT/target/release/backup
for round in $(seq "$ROUNDS"); do
    for build in base new; do
        bin=$BASE_BIN; [ "$build" = new ] && bin=$NEW_BIN
        echo "round $round of $ROUNDS: $build" >&2
        BACKUP_BIN=$bin RUNS=1 bash "$SCRIPT" "$@" > "$OUT/$build.$round"
    done
done

python3 - "$OUT" "$ROUNDS" <<'PY'
import re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
number = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)")
def rows(path):
    """{(first cell, second cell): (header cells, cells)} for every row of every table."""
    found, header, lines = {}, None, open(path).read().splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if set(cells[0]) <= set("-:"):
            continue
        if i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = cells
        elif len(cells) >= 3:
            found[(cells[0], cells[1])] = (header or [], cells)
    return found
runs = {b: [rows(f"{out}/{b}.{r}") for r in range(1, rounds + 1)] for b in ("base", "new")}
print("| row | column | base median | new median | new/base |")
print("|---|---|---|---|---|")
for key, (header, cells) in runs["new"][0].items():
    for col, cell in enumerate(cells[2:], start=2):
        if not number.match(cell):
            continue
        def median(build):
            vals = [float(number.match(r[key][1][col]).group(1)) for r in runs[build]
                    if key in r and col < len(r[key][1]) and number.match(r[key][1][col])]
            return statistics.median(vals) if vals else None
        b, n = median("base"), median("new")
        if b is None or n is None:
            continue
        name = header[col] if col < len(header) else f"column {col + 1}"
        ratio = f"{n / b:.2f}x" if b else "-"
        print(f"| {key[0]} {key[1]} | {name} | {b:g} | {n:g} | {ratio} |")
print(f"\n(medians of {rounds} rounds, builds alternating; machine: see the scripts' own lines)")
PY
