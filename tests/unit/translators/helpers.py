"""Translating as the request path does, and reading the fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from extproc.config.model import ReasoningPolicy
from extproc.sse import EventParser
from extproc.translators.schema import Operation, WireSchema
from extproc.translators.translation import Translation, translate_request

FIXTURES = Path(__file__).parent / "fixtures"
DEFAULT_CAP = 1024


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict[str, Any]:
    return orjson.loads(fixture(name))  # type: ignore[no-any-return]


def translate(
    client: WireSchema,
    provider: WireSchema,
    body: dict[str, Any],
    *,
    operation: Operation = "chat",
    model: str = "upstream-model",
    options: dict[str, Any] | None = None,
    reasoning: ReasoningPolicy = "map",
) -> tuple[Translation, dict[str, Any]]:
    return translate_request(
        client,
        provider,
        operation,
        body,
        model=model,
        provider_kind=provider.name,
        options=options or {},
        default_max_tokens=DEFAULT_CAP,
        stream_usage=True,
        reasoning=reasoning,
    )


def sse_payloads(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) for each event of a stream; `[DONE]` stays text."""
    events = []
    for block in EventParser().feed(raw, end=True):
        if block.event is None:
            continue
        data = block.event.data
        events.append((block.event.name, data if data == "[DONE]" else orjson.loads(data)))
    return events
