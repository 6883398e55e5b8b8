"""Relaying a provider's event stream to the client, event by event.

The relay passes the stream on as it comes, reads the usage the provider reports and counts
the content it streams. When the gateway asked for usage the client did not ask for
(`stream_options.include_usage`), the relay hides it again: the usage-only chunk is dropped and
the `"usage": null` OpenAI adds to every other chunk is removed, so the client gets exactly the
stream it asked for. A relay can also end the stream early with an error event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.sse import Block, EventParser
from extproc.usage import StreamUsage

_NULL_USAGE = (b',"usage":null', b'"usage":null,')


@dataclass(frozen=True, slots=True)
class Piece:
    raw: bytes
    """What to send on for this block (may be empty: a hidden block)."""
    output_tokens: int
    """Output tokens streamed so far, this block included (an estimate from content)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """Time to first token and time per output token, in seconds (None until known)."""

    first_token: float | None
    per_output_token: float | None


class StreamRelay:
    __slots__ = (
        "_clock",
        "_first_at",
        "_hide_usage",
        "_last_at",
        "_parser",
        "_schema",
        "_started",
        "stopped",
        "usage",
    )

    def __init__(
        self,
        *,
        schema: str,
        hide_usage: bool,
        started: float,
        keep_text: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`started`: when the request went upstream, on `clock`."""
        self._schema = schema
        self._hide_usage = hide_usage
        self._clock = clock
        self._parser = EventParser()
        self._started = started
        self._first_at: float | None = None
        self._last_at: float | None = None
        self.usage = StreamUsage(keep_text=keep_text)
        self.stopped = False

    def feed(self, chunk: bytes, *, end: bool) -> list[Piece]:
        """The blocks this chunk completes, each as it should reach the client."""
        pieces = []
        for block in self._parser.feed(chunk, end=end):
            raw = self._relay(block)
            pieces.append(Piece(raw, self.usage.estimated_output()))
        return pieces

    def stop(self, error: GatewayError) -> bytes:
        """The bytes that end the stream early with `error`, in the client's API shape."""
        self.stopped = True
        if self._schema == "anthropic":
            kind = "rate_limit_error" if error.status == 429 else "api_error"
            payload = {"type": "error", "error": {"type": kind, "message": error.message}}
            return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
        return b"data: " + error.to_body() + b"\n\ndata: [DONE]\n\n"

    def timing(self) -> Timing:
        if self._first_at is None or self._last_at is None:
            return Timing(None, None)
        tokens = self.usage.estimated_output()
        reported = self.usage.reported()
        if reported is not None:
            tokens = reported.output_tokens
        per_token = (self._last_at - self._first_at) / (tokens - 1) if tokens > 1 else None
        return Timing(self._first_at - self._started, per_token)

    def _relay(self, block: Block) -> bytes:
        if block.event is None:
            return block.raw
        before = self.usage.estimated_output()
        payload = self.usage.observe(block.event)
        if self.usage.estimated_output() > before:
            now = self._clock()
            self._first_at = self._first_at or now
            self._last_at = now
        if not self._hide_usage or payload is None or "usage" not in payload:
            return block.raw
        if payload["usage"] is not None and not payload.get("choices"):
            return b""  # the usage-only chunk the client did not ask for
        return _without_usage(block.raw, payload)


def _without_usage(raw: bytes, payload: dict[str, Any]) -> bytes:
    """The block with the `usage` member removed, bytes otherwise untouched when possible."""
    expected = {name: value for name, value in payload.items() if name != "usage"}
    for pattern in _NULL_USAGE:
        if raw.count(pattern) == 1:
            candidate = raw.replace(pattern, b"")
            data = candidate.partition(b"data:")[2].strip()
            try:
                if orjson.loads(data) == expected:
                    return candidate
            except orjson.JSONDecodeError:
                pass
    return b"data: " + orjson.dumps(expected) + b"\n\n"
