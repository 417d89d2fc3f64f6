"""A standard MCP client (the Python `mcp` package) against `backup mcp`.

Usage: mcp_client.py BACKUP_BINARY CONFIG

Connects over stdio, lists tools and resources, reads backup://config, calls backup_status and
backup_list, and prints one JSON line summarizing what it saw. Exits non-zero, saying why, on
any mismatch. tests/mcp_python.rs runs it; it needs nothing beyond `mcp`.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TOOLS = {
    "backup_now",
    "backup_list",
    "backup_status",
    "backup_show",
    "backup_diff",
    "backup_verify",
    "backup_restore",
    "backup_rollback",
}
RESOURCES = {"backup://last-run", "backup://config"}
STATES = {"fresh", "stale", "failed"}
# A hung server must fail the test, not hang it.
TIMEOUT_SECS = 60


class Mismatch(Exception):
    pass


def check(ok, what):
    if not ok:
        raise Mismatch(what)


async def call(session, name, arguments):
    """The structured content of a successful call; the client has already checked it against
    the tool's outputSchema (it raises when it does not conform)."""
    result = await session.call_tool(name, arguments)
    check(not result.is_error, f"{name} returned an error: {result.content}")
    check(
        isinstance(result.structured_content, dict),
        f"{name} returned no structured content: {result}",
    )
    return result.structured_content


async def run(binary, config):
    params = StdioServerParameters(command=binary, args=["mcp", "--config", config])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()

            tools = {tool.name for tool in (await session.list_tools()).tools}
            check(TOOLS <= tools, f"tools missing: {sorted(TOOLS - tools)}")
            uris = {str(r.uri) for r in (await session.list_resources()).resources}
            check(RESOURCES <= uris, f"resources missing: {sorted(RESOURCES - uris)}")

            contents = (await session.read_resource("backup://config")).contents
            check(len(contents) == 1, f"backup://config: {len(contents)} contents")
            # Only checks it parses: its shape belongs to tests/mcp.rs.
            json.loads(contents[0].text)

            status = await call(session, "backup_status", {})
            for key in ("state", "summary", "exit_code", "last_ok", "remote"):
                check(key in status, f"backup_status has no {key!r}: {status}")
            check(status["state"] in STATES, f"backup_status state: {status['state']!r}")

            listed = await call(session, "backup_list", {})
            check(
                isinstance(listed.get("snapshots"), list),
                f"backup_list has no snapshots list: {listed}",
            )

            return {
                "protocol_version": init.protocol_version,
                "server": init.server_info.name,
                "tools": sorted(tools),
                "resources": sorted(uris),
                "state": status["state"],
                "snapshots": len(listed["snapshots"]),
            }


def first_cause(error):
    """The first error inside the exception groups the SDK's task groups wrap errors in (found by
    shape: Python 3.10 has no ExceptionGroup type)."""
    while getattr(error, "exceptions", None):
        error = error.exceptions[0]
    return error


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} BACKUP_BINARY CONFIG")
    try:
        summary = asyncio.run(asyncio.wait_for(run(sys.argv[1], sys.argv[2]), TIMEOUT_SECS))
    except Exception as e:
        cause = first_cause(e)
        if isinstance(cause, Mismatch):
            sys.exit(f"mcp_client: {cause}")
        if isinstance(cause, asyncio.TimeoutError):
            sys.exit(f"mcp_client: no answer within {TIMEOUT_SECS} s")
        # Schema violations (the client checks outputSchema) and protocol errors land here.
        sys.exit(f"mcp_client: {type(cause).__name__}: {cause}")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
