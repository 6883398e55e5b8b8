"""One JSON line per request: who, which model, what happened, what it used and cost."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import TextIO

import orjson

from extproc.telemetry.record import RequestRecord, decisions_of


def open_access_log(target: str) -> TextIO | None:
    """`stdout`, `stderr`, `off` or a file path (appended to)."""
    if target == "off":
        return None
    if target == "stdout":
        return sys.stdout
    if target == "stderr":
        return sys.stderr
    return Path(target).open("a", encoding="utf-8", buffering=1)


def access_line(record: RequestRecord) -> bytes:
    started = datetime.datetime.fromtimestamp(record.started_ns / 1e9, datetime.UTC)
    usage = record.usage
    entry = {
        "time": started.isoformat(timespec="milliseconds"),
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
