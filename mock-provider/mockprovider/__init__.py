"""A fake LLM provider for demos, tests and benchmarks: OpenAI (and Azure OpenAI), Anthropic
and Gemini, each as its public API reference documents it — request checks, JSON answers,
event sequences, usage, error shapes, credential checks, gzip. See `app` for the routes and
the headers that script an answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiohttp import web

from mockprovider.app import SCRIPT_HEADERS, build_app


async def serve(host: str, port: int, keys: Iterable[str] = ()) -> None:
    """Serve until cancelled; prints the address it listens on (port 0 picks a free one)."""
    runner = web.AppRunner(build_app(frozenset(keys)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"mock provider listening on http://{host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


__all__ = ["SCRIPT_HEADERS", "build_app", "serve"]
