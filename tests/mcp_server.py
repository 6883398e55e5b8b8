"""A real MCP server for the tests, built with the official `mcp` SDK (`MCPServer`) and served
over Streamable HTTP by uvicorn in a thread: it records the tool calls it ran and the
`Authorization` header of every request it got."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

from tests.harness import free_port, wait_until


@dataclass
class RunningMcpServer:
    url: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(tool, arguments) of every tool call the server ran."""
    authorizations: list[str | None] = field(default_factory=list)
    """The `Authorization` header of every HTTP request it got."""
    progress_seen: threading.Event = field(default_factory=threading.Event)
    """Set by a client once it got the first progress of `count`: `count` waits for it."""


@contextmanager
def mcp_server(
    *, json_response: bool = False, stateless: bool = False
) -> Iterator[RunningMcpServer]:
    """An MCP server with five tools: `search`, `fetch`, `count` (streams its progress),
    `flaky` (always fails) and `delete_everything`, two prompts (`summarize`, `secret_plan`)
    and two resources (`docs://public/readme`, `docs://internal/salaries`); with
    `json_response`, it answers posts with JSON rather than SSE streams; `stateless`: without
    sessions (a `tools/call` needs no `initialize` first)."""
    port = free_port()
    running = RunningMcpServer(f"http://127.0.0.1:{port}/mcp")
    server = MCPServer("docs")

    @server.tool()
    def search(query: str) -> str:
        """Search the documents."""
        running.calls.append(("search", {"query": query}))
        return f"3 documents about {query}"

    @server.tool()
    def fetch(document: str) -> str:
        """Fetch one document."""
        running.calls.append(("fetch", {"document": document}))
        return f"the text of {document}"

    @server.tool()
    async def count(to: int, ctx: Context) -> str:
        """Count, reporting progress; waits after the first step until a client says it got
        it (so an answer held back whole never finishes)."""
        running.calls.append(("count", {"to": to}))
        for step in range(1, to + 1):
            await ctx.report_progress(step, to)
            if step == 1:
                seen = await asyncio.to_thread(running.progress_seen.wait, 10)
                if not seen:
                    return "nobody saw the first step"
        return f"counted to {to}"

    @server.tool()
    def flaky() -> str:
        """Fail, every time."""
        running.calls.append(("flaky", {}))
        raise ValueError("the backend is down")

    @server.tool()
    def delete_everything() -> str:
        """Delete every document."""
        running.calls.append(("delete_everything", {}))
        return "deleted"

    @server.prompt()
    def summarize(text: str) -> str:
        """Summarize a text."""
        return f"Summarize this: {text}"

    @server.prompt()
    def secret_plan() -> str:
        """The plan nobody may see."""
        return "the plan"

    @server.resource("docs://public/readme")
    def readme() -> str:
        """What everyone may read."""
        return "read me"

    @server.resource("docs://internal/salaries")
    def salaries() -> str:
        """What few may read."""
        return "salaries"

    app = server.streamable_http_app(json_response=json_response, stateless_http=stateless)

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"authorization")
            running.authorizations.append(header.decode() if header else None)
        await app(scope, receive, send)

    # log_config None: uvicorn leaves the process's logging as it is (the benchmark's quiet).
    config = uvicorn.Config(
        recording, host="127.0.0.1", port=port, log_level="warning", log_config=None
    )
    web = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(web.serve()), daemon=True)
    thread.start()
    wait_until(lambda: web.started, "the MCP server did not start")
    try:
        yield running
    finally:
        web.should_exit = True
        thread.join(timeout=10)
