"""One JSON line per request: who, which model, what happened, what it used and cost."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import BinaryIO

import orjson

from extproc.telemetry.record import RequestRecord, decisions_of


class AccessLog:
    """Lines gathered over one turn of the event loop and written in one `write`, rather than
    a system call per line. Outside a running loop, a line is written at once."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._lines: list[bytes] = []

    def write(self, line: bytes) -> None:
        if not self._lines:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._out.write(line + b"\n")
                self._out.flush()
                return
            loop.call_soon(self.flush)
        self._lines.append(line)

    def flush(self) -> None:
        # Taken before writing: lines a failed write (a full disk, a closed pipe) did not take
        # are lost, as a line was before, rather than kept to grow without bound.
        lines, self._lines = self._lines, []
        if lines:
            lines.append(b"")
            self._out.write(b"\n".join(lines))
        self._out.flush()


def open_access_log(target: str) -> AccessLog | None:
    """`stdout`, `stderr`, `off` or a file path (appended to)."""
    if target == "off":
        return None
    if target == "stdout":
        return AccessLog(sys.stdout.buffer)
    if target == "stderr":
        return AccessLog(sys.stderr.buffer)
    return AccessLog(Path(target).open("ab"))


_SECONDS: dict[int, str] = {}
"""The second the latest line was written in, formatted to the second."""


def timestamp(ns: int) -> str:
    """`2026-12-06T03:28:47.360+00:00`: UTC to the millisecond, as `datetime.isoformat`
    writes it, at a quarter of its cost (the second is formatted once)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    prefix = _SECONDS.get(seconds)
    if prefix is None:
        _SECONDS.clear()
        prefix = _SECONDS[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{prefix}.{rest // 1_000_000:03d}+00:00"


def access_line(record: RequestRecord) -> bytes:
    usage = record.usage
    entry = {
        "time": timestamp(record.started_ns),
        "request_id": record.request_id,
        "method": record.method,
        "path": record.path,
        "status": record.status,
        "error_type": record.error_type,
        "key_id": record.key_id,
        "principal_kind": record.principal_kind,
        "subject": record.subject,
        "team": record.team,
        "alias": record.alias,
        "provider": record.provider,
        "model": record.upstream_model,
        "response_model": record.response_model,
        "provider_request_id": record.provider_request_id,
        "operation": record.operation,
        "stream": record.stream,
        "quota": record.quota,
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "cached_input_tokens": usage.cached_input_tokens if usage else None,
        "cache_write_tokens": usage.cache_write_tokens if usage else None,
        "reasoning_tokens": usage.reasoning_tokens if usage else None,
        "cost_usd": record.cost_usd,
        "latency_ms": round(record.elapsed() * 1000, 2),
        "ttft_ms": None if record.first_token is None else round(record.first_token * 1000, 2),
        "attempts": record.attempts,
        "guardrails": decisions_of(record) or None,
    }
    if record.mcp_server is not None:
        entry |= {
            "mcp_server": record.mcp_server,
            "mcp_method": record.mcp_method,
            "mcp_tool": record.mcp_tool,
            "mcp_outcome": record.mcp_outcome,
        }
    return orjson.dumps(entry)
