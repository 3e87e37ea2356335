"""A real MCP client for authplug's tests: the MCP Python SDK's
streamable-HTTP client, run through the steps given, one JSON line on
stdout for each.

    client.py URL [--header 'Name: value']... STEP...

Steps: `list` (the tool names), `whoami`, `admin`, `time-list:N` (the median
seconds a `tools/list` call takes, over N calls), `count:N:DELAY` (the result and
when each progress report arrived, in seconds since the call), `blob:SIZE`
(the length of the text), `pause` (prints {"paused": true}, then waits for
a line on stdin). All steps share one MCP session. Exit status 1 on any
error, with the error as {"error": ...}.
"""

import asyncio
import json
import sys
import time

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


def out(value):
    print(json.dumps(value), flush=True)


async def main(url, headers, steps):
    async with streamablehttp_client(url, headers=headers) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for step in steps:
                name, *args = step.split(":")
                if name == "list":
                    tools = await session.list_tools()
                    out({"tools": sorted(t.name for t in tools.tools)})
                elif name == "time-list":
                    times = []
                    for _ in range(int(args[0])):
                        started = time.perf_counter()
                        await session.list_tools()
                        times.append(time.perf_counter() - started)
                    times.sort()
                    out({"median": times[len(times) // 2]})
                elif name == "admin":
                    result = await session.call_tool("admin", {})
                    out({"admin": result.content[0].text, "error": result.isError})
                elif name == "whoami":
                    result = await session.call_tool("whoami", {})
                    out({"whoami": result.content[0].text, "error": result.isError})
                elif name == "count":
                    started = time.monotonic()
                    arrivals = []

                    async def progress(done, total, message):
                        arrivals.append(round(time.monotonic() - started, 3))

                    result = await session.call_tool(
                        "count",
                        {"n": int(args[0]), "delay": float(args[1])},
                        progress_callback=progress,
                    )
                    out({
                        "count": result.content[0].text,
                        "progress_at": arrivals,
                        "done_at": round(time.monotonic() - started, 3),
                    })
                elif name == "blob":
                    result = await session.call_tool("blob", {"size": int(args[0])})
                    out({"blob": len(result.content[0].text)})
                elif name == "pause":
                    out({"paused": True})
                    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
                else:
                    raise SystemExit(f"unknown step {step}")


args = sys.argv[1:]
url = args.pop(0)
headers = {}
while args and args[0] == "--header":
    name, value = args[1].split(":", 1)
    headers[name.strip()] = value.strip()
    args = args[2:]
try:
    asyncio.run(main(url, headers, args))
except BaseException as error:  # noqa: BLE001 - any failure is the test's to see
    if isinstance(error, SystemExit) and error.code in (0, None):
        raise
    out({"error": repr(error)})
    sys.exit(1)
