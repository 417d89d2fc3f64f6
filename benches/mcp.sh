#!/usr/bin/env bash
# Benchmark: the same work through `backup mcp` and through the command line, in the same run.
#
# Usage: benches/mcp.sh [SIZE_MIB]        (default: 100)
#   RUNS=N          timed snapshots per side (default 3); the quick calls run 5 x N times
#   BENCH_DIR=D     scratch folder (default target/bench); the generated database is kept there
#   SHARED=D        folder with make-db.py (default ../shared/bench)
#
# With a make-db.py database of SIZE_MIB and a folder remote, it times:
#   now      `backup now --json` (a process per snapshot) against `backup_now` on one server
#   list     `backup list --json` against `backup_list`
#   status   `backup status --json` against `backup_status`
# A call's time is from the request written to the answer read, on a server started once (as an
# agent's client keeps it); a command's is the whole process. It prints medians (min-max) and the
# server's peak RSS (VmHWM) over all its calls, beside the largest command's.
set -euo pipefail
SIZE=${1:-100}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
work=$BENCH_DIR/mcp-$SIZE
make_db_once "$work" "$SIZE"
app=$work/app
rm -rf "$app"
mkdir -p "$app/data" "$app/remote"
cp "$work/db.db" "$app/data/app.db"
cat > "$app/backup.toml" <<EOF
[[database]]
name = "app"
path = "data/app.db"
[local]
dir = "backups"
[remote]
type = "dir"
path = "remote"
# Every snapshot kept, so that both sides do the same work each time.
[retention]
manual = "all"
EOF

python3 - "$BIN" "$app/backup.toml" "${RUNS}" <<'PY'
import json, statistics, subprocess, sys, time

bin_path, config, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])

def cli(args):
    """Wall time and peak RSS (KiB) of one `backup` process."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", bin_path, "--config", config, *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 6):
        sys.exit(f"backup {' '.join(args)} failed: {proc.stderr}")
    return wall, int(proc.stderr.strip().splitlines()[-1])

server = subprocess.Popen([bin_path, "--config", config, "mcp"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
next_id = 0

def request(method, params):
    global next_id
    next_id += 1
    server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": next_id, "method": method,
                                   "params": params}) + "\n")
    server.stdin.flush()
    while True:
        message = json.loads(server.stdout.readline())
        if message.get("id") == next_id:
            return message

request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "1"}})
server.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")

def call(tool, arguments):
    start = time.perf_counter()
    answer = request("tools/call", {"name": tool, "arguments": arguments})
    wall = time.perf_counter() - start
    if answer.get("result", {}).get("isError") is not False:
        sys.exit(f"{tool} failed: {answer}")
    return wall

rows = []
cli_rss = 0
for name, args, tool, times in [
    ("now", ["now", "--json"], "backup_now", runs),
    ("list", ["list", "--json"], "backup_list", 5 * runs),
    ("status", ["status", "--json"], "backup_status", 5 * runs),
]:
    cli_walls, mcp_walls = [], []
    for _ in range(times):
        wall, rss = cli(args)
        cli_walls.append(wall)
        cli_rss = max(cli_rss, rss)
        mcp_walls.append(call(tool, {}))
    rows.append((name, cli_walls, mcp_walls))

with open(f"/proc/{server.pid}/status") as status:
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
server.stdin.close()
server.wait()

def cell(walls):
    ms = [w * 1000 for w in walls]
    return f"{statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f})"

print("| step | command line, ms median (min-max) | backup mcp, ms median (min-max) |")
print("|---|---|---|")
for name, cli_walls, mcp_walls in rows:
    print(f"| {name} | {cell(cli_walls)} | {cell(mcp_walls)} |")
print(f"\npeak RSS: the server over every call {hwm / 1024:.0f} MiB; "
      f"the largest command {cli_rss / 1024:.0f} MiB")
PY
