# Sourced by benches/snapshot.sh and benches/restore.sh: where things are, the tools both need,
# the release build (or BACKUP_BIN), and the helpers that time a command and make a test database.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench}
RUNS=${RUNS:-3}
[ -x "$SHARED/make-db.py" ] || { echo "make-db.py not found in $SHARED (set SHARED=)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "GNU time is needed (apt-get install time)" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "sqlite3 is needed by the baselines (apt-get install sqlite3)" >&2; exit 2; }

# BACKUP_BIN times another build of `backup` instead of this tree's (benches/compare.sh).
if [ -n "${BACKUP_BIN:-}" ]; then
    BIN=$BACKUP_BIN
else
    cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml"
    BIN=$ROOT/target/release/backup
fi
mkdir -p "$BENCH_DIR"

# Runs a command; appends "wall_s max_rss_kib" to a file (GNU time: %M is the largest single
# process of the tree, as in BASELINES.md).
measure() {
    local out=$1; shift
    /usr/bin/time -f "%e %M" -a -o "$out" "$@" > /dev/null
}

# Makes (once, then reuses) a WAL database of $2 MiB at $1/db.db with make-db.py, and what it
# holds in $1/db.json.
make_db_once() {
    local work=$1 size=$2
    mkdir -p "$work"
    if [ ! -f "$work/db.db" ] || [ ! -f "$work/db.json" ]; then
        echo "making a ${size} MiB database..." >&2
        python3 "$SHARED/make-db.py" "$work/db.db" "$size" > "$work/db.json"
    fi
}
