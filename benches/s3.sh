#!/usr/bin/env bash
# Benchmark: the S3 remote against the directory remote, in the same run, on the same database,
# against a real S3 server (Garage 2.5.0 on loopback): `backup now` (snapshot + push) and
# `backup restore latest` from the remote into an empty folder (download + every restore check).
#
# Usage: benches/s3.sh [SIZE_MIB]            (default: 1024)
#        benches/s3.sh cluster [SIZE_MIB]    (the three-node case, below; default 1024)
#   RUNS=N        timed runs per mode, after one warm-up each (default 3)
#   BENCH_DIR=D   scratch folder (default target/bench); generated databases are kept there,
#                 Garage's data goes under D/s3 (D/s3-cluster)
#   SHARED=D      folder with make-db.py (default ../shared/bench)
#   BACKUP_BIN=F  time another build of `backup` (benches/compare.sh)
# Garage is $BACKUP_TEST_GARAGE, else `garage` on the PATH, else the one `.ci/run` installs in
# ${XDG_CACHE_HOME:-$HOME/.cache}/backup-agent/garage-2.5.0/bin (the tests' order).
#
# Default: one Garage node. Targets: wall(s3) <= 1.2 x wall(dir) for push and restore; peak RSS
# of `backup` <= 64 MiB for both (Garage's own memory is not counted: it is the server).
#
# cluster: three Garage nodes, replication_factor = 3, one zone each; the tool talks to node 1.
# A push with no fault; a second push during which node 3 is killed (SIGKILL) once the upload
# has begun: Garage writes with a quorum of 2 of 3, so it must complete. Then, node 3 still down,
# a restore of that snapshot into an empty folder and `verify --remote latest` must pass, and the
# restored row counts must match the live database's.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench}
RUNS=${RUNS:-3}
CLUSTER=0
if [ "${1:-}" = cluster ]; then CLUSTER=1; shift; fi
SIZE=${1:-1024}
[ -x /usr/bin/time ] || { echo "GNU time is needed (apt-get install time)" >&2; exit 2; }
[ -x "$SHARED/make-db.py" ] || { echo "make-db.py not found in $SHARED (set SHARED=)" >&2; exit 2; }

find_garage() {
    if [ -n "${BACKUP_TEST_GARAGE:-}" ]; then echo "$BACKUP_TEST_GARAGE"; return; fi
    if command -v garage >/dev/null; then command -v garage; return; fi
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/backup-agent/garage-2.5.0/bin/garage"
}
GARAGE=$(find_garage)
[ -x "$GARAGE" ] || { echo "no Garage binary at $GARAGE (set BACKUP_TEST_GARAGE, or see tests/support/garage.rs)" >&2; exit 2; }

cargo build --release --locked --quiet --manifest-path "$ROOT/Cargo.toml" --bin backup
BIN=${BACKUP_BIN:-$ROOT/target/release/backup}

# The database, made once and shared with the other scripts (same place as github.sh's).
work=$BENCH_DIR/$SIZE
db=$work/db.db
mkdir -p "$work"
if [ ! -f "$db" ] || [ ! -f "$work/db.json" ]; then
    echo "making a ${SIZE} MiB database..." >&2
    python3 "$SHARED/make-db.py" "$db" "$SIZE" > "$work/db.json"
fi

# Every Garage server this script starts, by pid, so that the trap stops exactly those, also
# when a step fails halfway (set -e) or on Ctrl-C.
GARAGE_PIDS=()
stop_garages() {
    local pid
    for pid in "${GARAGE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${GARAGE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_garages EXIT
trap 'exit 130' INT TERM

# N loopback ports free at this instant, all bound at once so that they differ.
free_ports() {
    python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# garage_cli DIR ARGS...: the CLI against the node whose config is DIR/garage.toml.
garage_cli() {
    local dir=$1; shift
    "$GARAGE" -c "$dir/garage.toml" "$@"
}

# start_node DIR RPC_PORT S3_PORT SECRET REPLICATION: writes the node's config (the keys of
# tests/support/garage.rs), starts its server in the background and waits until it answers.
start_node() {
    local dir=$1 rpc=$2 s3=$3 secret=$4 replication=$5
    rm -rf "$dir"; mkdir -p "$dir"
    cat > "$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = $replication
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
EOF
    RUST_LOG=garage=info "$GARAGE" -c "$dir/garage.toml" server >> "$dir/garage.log" 2>&1 &
    GARAGE_PIDS+=($!)
    echo $! > "$dir/pid"
    for _ in $(seq 300); do
        garage_cli "$dir" status >/dev/null 2>&1 && return 0
        kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "Garage in $dir did not start; its log ends:" >&2
    tail -20 "$dir/garage.log" >&2
    exit 1
}

# node_id DIR: `<hex id>@127.0.0.1:<rpc port>`, as `node connect` takes it.
node_id() { garage_cli "$1" node id -q; }

# make_key DIR: a key that may create buckets, exported as the tool reads it.
make_key() {
    garage_cli "$1" key create bench-key >/dev/null
    AWS_ACCESS_KEY_ID=$(garage_cli "$1" key info bench-key --key-id)
    AWS_SECRET_ACCESS_KEY=$(garage_cli "$1" key info bench-key --secret-key)
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    # The tool creates its bucket itself (`init --create`), through S3 CreateBucket.
    garage_cli "$1" key allow --create-bucket bench-key >/dev/null
}

# wait_s3 PORT: until the S3 API listens (it comes up a little after the RPC side).
wait_s3() {
    for _ in $(seq 300); do
        python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "the S3 API never listened on port $1" >&2; exit 1
}

# s3_remote ENDPOINT: the [remote] body of a config for the bench bucket.
s3_remote() {
    printf 'type = "s3"\nbucket = "bench-bucket"\nendpoint = "%s"\nregion = "garage"\npath_style = true' "$1"
}

# write_configs DIR REMOTE: push.toml (the live database) and restore.toml (an empty app folder,
# `live/app.db`, and an empty local dir, so restore must download), as github.sh does.
write_configs() {
    printf '[[database]]\nname = "app"\npath = "%s"\n[local]\ndir = "snapshots"\n[remote]\n%s\n' "$db" "$2" > "$1/push.toml"
    printf '[[database]]\nname = "app"\npath = "live/app.db"\n[local]\ndir = "restore-snapshots"\n[remote]\n%s\n' "$2" > "$1/restore.toml"
}

# Runs a command; appends "wall_s max_rss_kib" to a file.
measure() {
    local out=$1; shift
    /usr/bin/time -f "%e %M" -a -o "$out" "$@" > /dev/null
}

machine() { echo "(machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB)"; }

secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

if [ "$CLUSTER" = 0 ]; then
    g=$BENCH_DIR/s3
    rm -rf "$g"; mkdir -p "$g"
    read -r rpc s3port < <(free_ports 2)
    start_node "$g/garage" "$rpc" "$s3port" "$secret" 1
    node=$(node_id "$g/garage"); node=${node%%@*}
    garage_cli "$g/garage" layout assign -z dc1 -c 1G "$node" >/dev/null
    garage_cli "$g/garage" layout apply --version 1 >/dev/null
    make_key "$g/garage"
    wait_s3 "$s3port"

    for mode in dir s3; do
        mkdir -p "$g/$mode"
        if [ $mode = dir ]; then
            mkdir -p "$g/dir/remote"
            remote=$'type = "dir"\npath = "remote"'
        else
            remote=$(s3_remote "http://127.0.0.1:$s3port")
        fi
        write_configs "$g/$mode" "$remote"
    done
    "$BIN" --config "$g/s3/push.toml" init --create > "$g/s3/init.out"

    for i in $(seq 0 "$RUNS"); do
        for mode in dir s3; do
            m=$g/$mode
            t=$m/times; [ "$i" -eq 0 ] && t=$m/warmup
            rm -rf "$m/snapshots"
            measure "$t.push" "$BIN" --config "$m/push.toml" --no-progress now
            rm -rf "$m/live" "$m/restore-snapshots" "$m"/pre_restore_*
            measure "$t.restore" "$BIN" --config "$m/restore.toml" --no-progress restore latest --yes
        done
        echo "run $i of $RUNS done" >&2
    done

    python3 - "$g" "$SIZE" <<'PY'
import statistics, sys
g, size = sys.argv[1], sys.argv[2]
print("| size | step | dir wall s | s3 wall s | s3/dir | dir RSS MiB | s3 RSS MiB |")
print("|---|---|---|---|---|---|---|")
verdicts = []
for step in ("push", "restore"):
    med = {}
    for mode in ("dir", "s3"):
        rows = [tuple(map(float, l.split())) for l in open(f"{g}/{mode}/times.{step}")]
        med[mode] = (statistics.median(r[0] for r in rows), statistics.median(r[1] / 1024 for r in rows))
    ratio = med["s3"][0] / med["dir"][0]
    print(f"| {size} MiB | {step} | {med['dir'][0]:.2f} | {med['s3'][0]:.2f} | {ratio:.3f}x | {med['dir'][1]:.0f} | {med['s3'][1]:.0f} |")
    verdicts.append(f"{step}: s3 {ratio:.3f}x dir (target <= 1.2) {'PASS' if ratio <= 1.2 else 'FAIL'}; "
                    f"peak RSS {med['s3'][1]:.0f} MiB (target <= 64) {'PASS' if med['s3'][1] <= 64 else 'FAIL'}")
print()
print("\n".join(verdicts))
PY
    echo "(medians of $RUNS runs after one warm-up each; Garage $("$GARAGE" --version | awk '{sub(/^cargo:/, "", $2); print $2}'), one node) $(machine)"
    exit 0
fi

# cluster: three nodes, one zone each, every object on all three; quorum 2 of 3.
c=$BENCH_DIR/s3-cluster
rm -rf "$c"; mkdir -p "$c"
read -r rpc1 s31 rpc2 s32 rpc3 s33 < <(free_ports 6)
start_node "$c/node1" "$rpc1" "$s31" "$secret" 3
start_node "$c/node2" "$rpc2" "$s32" "$secret" 3
start_node "$c/node3" "$rpc3" "$s33" "$secret" 3
ids=()
for n in 1 2 3; do ids+=("$(node_id "$c/node$n")"); done
# Node 1 learns the others' addresses; they learn each other's from it.
garage_cli "$c/node1" node connect "${ids[1]}" >/dev/null
garage_cli "$c/node1" node connect "${ids[2]}" >/dev/null
for n in 1 2 3; do
    garage_cli "$c/node1" layout assign -z "dc$n" -c 1G "${ids[$((n - 1))]%%@*}" >/dev/null
done
garage_cli "$c/node1" layout apply --version 1 >/dev/null
# `status` lists the healthy nodes (a line each under `==== HEALTHY NODES ====`, then any failed
# ones under a section of their own): wait for all three with their zones.
healthy() {
    awk '/^====/ { h = /HEALTHY/; next } h && / dc[123] / { n++ } END { print n + 0 }'
}
up=0
for _ in $(seq 300); do
    up=$(garage_cli "$c/node1" status 2>/dev/null | healthy)
    [ "$up" -ge 3 ] && break
    sleep 0.2
done
garage_cli "$c/node1" status > "$c/status.before"
[ "$up" -ge 3 ] || { echo "only $up of 3 Garage nodes up:" >&2; cat "$c/status.before" >&2; exit 1; }
make_key "$c/node1"
wait_s3 "$s31"

write_configs "$c" "$(s3_remote "http://127.0.0.1:$s31")"
"$BIN" --config "$c/push.toml" init --create > "$c/init.out"

echo "cluster: push, no fault..." >&2
push_ok=PASS
/usr/bin/time -f "%e %M" -o "$c/push.time" "$BIN" --config "$c/push.toml" --no-progress -v now \
    > /dev/null 2> "$c/push.log" || push_ok=FAIL

# The second push: node 3 is killed once the snapshot is taken and the upload has begun (`-v`
# logs "snapshot … taken" when the archive is whole, and the push follows at once; then 1 s), so
# that parts are on their way when it goes.
echo "cluster: push, node 3 killed mid-upload..." >&2
start=$(date +%s.%N)
/usr/bin/time -f "%e %M" -o "$c/kill.time" "$BIN" --config "$c/push.toml" --no-progress -v now \
    > /dev/null 2> "$c/kill.log" &
push_pid=$!
until grep -q ' snapshot .* taken' "$c/kill.log" 2>/dev/null; do
    kill -0 "$push_pid" 2>/dev/null || break
    sleep 0.1
done
sleep 1
killed_at=""
if kill -0 "$push_pid" 2>/dev/null; then
    kill -KILL "$(cat "$c/node3/pid")"
    killed_at=$(date +%s.%N)
fi
kill_ok=PASS
wait "$push_pid" || kill_ok=FAIL
ended=$(date +%s.%N)
garage_cli "$c/node1" status > "$c/status.after" 2>&1 || true

echo "cluster: restore and verify with node 3 down..." >&2
restore_ok=PASS
/usr/bin/time -f "%e %M" -o "$c/restore.time" "$BIN" --config "$c/restore.toml" --no-progress -v restore latest --yes \
    > "$c/restore.out" 2> "$c/restore.log" || restore_ok=FAIL
verify_ok=PASS
/usr/bin/time -f "%e %M" -o "$c/verify.time" "$BIN" --config "$c/push.toml" --no-progress -v verify --remote latest \
    > "$c/verify.out" 2> "$c/verify.log" || verify_ok=FAIL

# Exits 1 when a verdict fails: this case is a correctness check as much as a timing.
rc=0
python3 - "$c" "$db" "$SIZE" "$start" "${killed_at:-none}" "$ended" "$push_ok" "$kill_ok" "$restore_ok" "$verify_ok" <<'PY' || rc=$?
import os, re, sqlite3, sys
c, db, size, start, killed_at, ended = sys.argv[1:7]
ok = dict(zip(("push", "kill", "restore", "verify"), sys.argv[7:11]))

def counts(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name")]
    return {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables}

def timed(name):
    try:
        wall, rss = open(f"{c}/{name}.time").read().split()[-2:]
        return float(wall), int(rss) / 1024
    except (OSError, ValueError):
        return float("nan"), float("nan")

live = counts(db)
restored_path = f"{c}/live/app.db"
restored = counts(restored_path) if os.path.exists(restored_path) else {}
rows_ok = "PASS" if restored == live else "FAIL"
if killed_at == "none":
    kill_note = "node 3 NOT killed: the push ended before the upload was seen"
    ok["kill"] = "FAIL"
else:
    kill_note = (f"node 3 killed {float(killed_at) - float(start):.1f} s after the push began, "
                 f"{float(ended) - float(killed_at):.1f} s before it ended")
log = open(f"{c}/kill.log").read()
retries = [l for l in log.splitlines() if re.search(r"retr|WARN|ERROR|fail", l, re.I)]

print("| case | wall s | peak RSS MiB | result |")
print("|---|---|---|---|")
for case, name, key in (("push, no fault", "push", "push"),
                        ("push, node 3 killed mid-upload", "kill", "kill"),
                        ("restore with 2 of 3 nodes", "restore", "restore"),
                        ("verify --remote latest, 2 of 3 nodes", "verify", "verify")):
    wall, rss = timed(name)
    result = ok[key]
    if key == "restore":
        result += f"; rows {sum(restored.values()):,} in {len(restored)} tables vs live {sum(live.values()):,} in {len(live)}: {rows_ok}"
    print(f"| {case} | {wall:.2f} | {rss:.0f} | {result} |")
print()
print(f"({size} MiB database; {kill_note})")
print(f"the killed push's log: {len(retries)} line(s) of retries/warnings/errors" + (":" if retries else ""))
for l in retries[:20]:
    print("    " + l)
verdicts = [
    f"push with no fault: {ok['push']}",
    f"push completes with node 3 killed mid-upload: {ok['kill']}",
    f"restore with node 3 down: {ok['restore']}; row counts match the live database: {rows_ok}",
    f"verify --remote latest with node 3 down: {ok['verify']}",
]
rss_max = max(timed(n)[1] for n in ("push", "kill", "restore", "verify"))
verdicts.append(f"peak RSS {rss_max:.0f} MiB (target <= 64): {'PASS' if rss_max <= 64 else 'FAIL'}")
print()
print("\n".join(verdicts))
sys.exit(1 if any("FAIL" in v for v in verdicts) else 0)
PY
# Garage notices a dead peer only after its pings time out, so this may still say 3.
echo "garage status right after the killed push: $(healthy < "$c/status.after") of 3 nodes healthy"
echo "(Garage $("$GARAGE" --version | awk '{sub(/^cargo:/, "", $2); print $2}'), three nodes, replication_factor = 3) $(machine)"
exit "$rc"
