"""Relaying a provider's event stream to the client, event by event.

Every event is read with the provider's schema (usage, content so far). When the client speaks
the same schema the event passes on byte for byte — except the usage the gateway asked for on
the client's behalf (`stream_options.include_usage`), which is taken out again so the client
gets exactly the stream it asked for. Otherwise the event is written anew in the client's
schema. A relay can also end the stream early with an error event in the client's schema.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson

from extproc.errors import GatewayError
from extproc.guardrails.policy import Screen
from extproc.pipeline.stream_screen import StreamScreen
from extproc.sse import MAX_EVENT, Block, EventTooLarge
from extproc.translators.ir import (
    ReasoningDelta,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolArgumentsDelta,
    UsageReport,
)
from extproc.translators.schema import EventData
from extproc.translators.translation import Translation
from extproc.usage import Usage, estimate_text_tokens


@dataclass(frozen=True, slots=True)
class Piece:
    raw: bytes
    """What to send on for this block (may be empty: a hidden or untranslatable block)."""
    output_tokens: int
    """Output tokens streamed so far, this block included (an estimate from content)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """Time to first token and time per output token, in seconds (None until known)."""

    first_token: float | None
    per_output_token: float | None


class StreamAccount:
    """What a stream said so far: the provider's usage when it reports it, and otherwise an
    estimate of the output from the content seen (for streams that are cut)."""

    __slots__ = ("_chars", "_pieces", "_reported", "done", "id", "model", "texts")

    def __init__(self, *, keep_text: bool = False) -> None:
        self._chars = 0
        self._pieces = 0
        self._reported: Usage | None = None
        self.done = False
        self.model: str | None = None
        self.id: str | None = None
        """The id the provider gave its answer."""
        self.texts: list[str] | None = [] if keep_text else None
        """The streamed text, kept only when it is to be recorded."""

    def observe(self, events: Iterable[StreamEvent]) -> None:
        for event in events:
            if isinstance(event, TextDelta | ReasoningDelta | ToolArgumentsDelta):
                text = event.fragment if isinstance(event, ToolArgumentsDelta) else event.text
                self._pieces += 1
                self._chars += len(text)
                if self.texts is not None and isinstance(event, TextDelta):
                    self.texts.append(text)
            elif isinstance(event, UsageReport):
                self._reported = event.usage
            elif isinstance(event, StreamStart):
                self.model, self.id = event.model, event.id
            elif isinstance(event, StreamEnd):
                self.done = True

    def reported(self) -> Usage | None:
        return self._reported

    def estimated_output(self) -> int:
        return estimate_text_tokens(self._chars, self._pieces)


class StreamRelay:
    __slots__ = (
        "_clock",
        "_decoder",
        "_encoder",
        "_events_sent",
        "_first_at",
        "_last_at",
        "_parser",
        "_started",
        "_translation",
        "screen",
        "stopped",
        "usage",
    )

    def __init__(
        self,
        translation: Translation,
        *,
        started: float,
        keep_text: bool = False,
        max_event: int = MAX_EVENT,
        clock: Callable[[], float] = time.monotonic,
        screen: Screen | None = None,
    ) -> None:
        """`started`: when the request went upstream, on `clock`; `max_event`: the largest
        event relayed (a larger one raises EventTooLarge from `feed`); `screen`: the output
        guardrails (the stream is then translated: written anew from neutral events)."""
        self._translation = translation
        self._decoder = translation.decoder()
        self._encoder = translation.encoder()
        self._clock = clock
        self._parser = translation.provider.framer(max_event)
        self._started = started
        self._first_at: float | None = None
        self._last_at: float | None = None
        self.usage = StreamAccount(keep_text=keep_text)
        self.stopped = False
        self.screen = StreamScreen(screen) if screen is not None else None
        self._events_sent = 0
        """Events the client got (a Responses error event's sequence number)."""

    def feed(self, chunk: bytes, *, end: bool) -> list[Piece]:
        """The blocks this chunk completes, each as it should reach the client. Raises
        EventTooLarge (with the pieces completed before the event) for an event over the
        limit."""
        try:
            blocks = self.frame(chunk, end=end)
        except EventTooLarge as error:
            raise EventTooLarge(str(error), self.pieces(error.before, end=False)) from None
        return self.pieces(blocks, end=end)

    def frame(self, chunk: bytes, *, end: bool) -> list[Block]:
        """The blocks this chunk completes, not relayed yet. Raises EventTooLarge (with the
        blocks completed before the event) for an event over the limit."""
        return self._parser.feed(chunk, end=end)

    def pieces(self, blocks: list[Block], *, end: bool) -> list[Piece]:
        """Each block as it should reach the client; `end`: the stream ends after them."""
        pieces = [self._piece(self._relay(block)) for block in blocks]
        if end:
            pieces.append(self._piece(self._emit(self._decoder.end())))
        return pieces

    def stop(self, error: GatewayError, *, spent: bool = True) -> bytes:
        """The bytes that end the stream early with `error`, in the client's schema. `spent`:
        a budget ran out (the provider went on generating what it had reserved); otherwise
        the provider went silent and only what it streamed counts."""
        self.stopped = spent
        return self._translation.client.stream_error(error.api_error(), self._events_sent)

    def timing(self) -> Timing:
        if self._first_at is None or self._last_at is None:
            return Timing(None, None)
        tokens = self.usage.estimated_output()
        reported = self.usage.reported()
        if reported is not None:
            tokens = reported.output_tokens
        per_token = (self._last_at - self._first_at) / (tokens - 1) if tokens > 1 else None
        return Timing(self._first_at - self._started, per_token)

    def deliver(self, piece: Piece) -> bytes:
        """The piece's bytes, noted as sent to the client."""
        # Every event ends in a blank line, and JSON data holds no raw line breaks.
        self._events_sent += piece.raw.count(b"\n\n") + piece.raw.count(b"\r\n\r\n")
        return piece.raw

    def _piece(self, raw: bytes) -> Piece:
        return Piece(raw, self.usage.estimated_output())

    def _relay(self, block: Block) -> bytes:
        if block.event is None:
            return block.raw  # a comment (keep-alive): valid in every schema
        data = _event_data(block.event.data)
        events = self._decoder.decode(data)
        if self._encoder is not None:
            return self._emit(events)
        self._account(events)
        without_usage = self._translation.provider.without_usage
        if self._translation.hide_usage and without_usage is not None and isinstance(data, dict):
            return without_usage(block.raw, data)
        return block.raw

    def _emit(self, events: list[StreamEvent]) -> bytes:
        """The client's bytes for the provider's events (all of which count for usage),
        as far as the guardrails let them pass."""
        self._account(events)
        if self._encoder is None:
            return b""
        if self.screen is not None:
            events = self.screen.feed(events)
        return b"".join(self._encoder.encode(event) for event in events)

    def _account(self, events: list[StreamEvent]) -> None:
        before = self.usage.estimated_output()
        self.usage.observe(events)
        if self.usage.estimated_output() > before:
            now = self._clock()
            self._first_at = self._first_at or now
            self._last_at = now


def _event_data(data: str) -> EventData:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    return parsed if isinstance(parsed, dict) else data
