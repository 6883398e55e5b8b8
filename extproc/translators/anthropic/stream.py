"""Anthropic event streams ⇄ neutral stream events.

Anthropic's sequence: `message_start` (with the input usage), then for each content block
`content_block_start`, `content_block_delta`s (`text_delta`, `input_json_delta`, …) and
`content_block_stop`, then `message_delta` (stop reason, cumulative usage) and
`message_stop`; `ping` events may come at any time, and `error` ends a failed stream.
"""

from __future__ import annotations

import orjson

from extproc.errors import ApiError
from extproc.translators.anthropic.answer import (
    ANTHROPIC_STOP,
    STOP_REASONS,
    context_management,
    usage_from,
    usage_object,
)
from extproc.translators.anthropic.errors import error_from_object, error_object
from extproc.translators.common import arguments_text, as_object, new_id
from extproc.translators.ir import (
    ChatRequest,
    Finish,
    JsonObject,
    Reasoning,
    ReasoningDelta,
    StopReason,
    StreamEnd,
    StreamEvent,
    StreamFailed,
    StreamStart,
    TextDelta,
    ToolArgumentsDelta,
    ToolCallStart,
    UsageReport,
)
from extproc.translators.reasoning import sign
from extproc.translators.schema import EventData
from extproc.usage import Usage


class StreamDecoder:
    __slots__ = ("_ended", "_model", "_tool_blocks", "_usage")

    def __init__(self, model: str) -> None:
        self._model = model
        self._usage: JsonObject = {}
        self._tool_blocks: dict[int, int] = {}
        """Content block index → the tool call's position among the answer's calls."""
        self._ended = False

    def decode(self, data: EventData) -> list[StreamEvent]:  # noqa: PLR0911 - one case per event
        if isinstance(data, str):
            return []
        kind = data.get("type")
        if kind == "message_start":
            message = as_object(data.get("message"))
            usage = message.get("usage")
            self._usage = dict(usage) if isinstance(usage, dict) else {}
            model = message.get("model")
            return [
                StreamStart(
                    message.get("id") or new_id("msg_"),
                    model if isinstance(model, str) else self._model,
                    usage_from(self._usage) if self._usage else None,
                )
            ]
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_delta":
            return self._delta(data)
        if kind == "message_delta":
            return self._message_delta(data)
        if kind == "message_stop":
            self._ended = True
            return [StreamEnd()]
        if kind == "error" and isinstance(data.get("error"), dict):
            return [StreamFailed(error_from_object(data["error"], 500))]
        return []

    def _block_start(self, data: JsonObject) -> list[StreamEvent]:
        block = data.get("content_block")
        index = data.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            return []
        if block.get("type") == "tool_use":
            position = self._tool_blocks[index] = len(self._tool_blocks)
            events: list[StreamEvent] = [
                ToolCallStart(
                    position, block.get("id") or new_id("toolu_"), block.get("name") or ""
                )
            ]
            if isinstance(block.get("input"), dict) and block["input"]:
                events.append(ToolArgumentsDelta(position, arguments_text(block["input"])))
            return events
        if block.get("type") == "text" and block.get("text"):
            return [TextDelta(block["text"])]
        return []

    def _delta(self, data: JsonObject) -> list[StreamEvent]:
        delta = as_object(data.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            return [TextDelta(delta["text"])]
        if kind == "input_json_delta" and delta.get("partial_json"):
            position = self._tool_blocks.get(data.get("index"))  # type: ignore[arg-type]
            if position is not None:
                return [ToolArgumentsDelta(position, delta["partial_json"])]
        if kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            return [ReasoningDelta(delta["thinking"])]
        return []

    def _message_delta(self, data: JsonObject) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        delta = as_object(data.get("delta"))
        if isinstance(delta.get("stop_reason"), str):
            sequence = delta.get("stop_sequence")
            reason: StopReason = STOP_REASONS.get(delta["stop_reason"], "other")
            events.append(Finish(reason, sequence if isinstance(sequence, str) else None))
        usage = data.get("usage")
        if isinstance(usage, dict):
            # Cumulative: later figures replace earlier ones; absent ones keep theirs.
            self._usage |= {name: value for name, value in usage.items() if value is not None}
            events.append(UsageReport(usage_from(self._usage)))
        return events

    def end(self) -> list[StreamEvent]:
        if self._ended:
            return []
        self._ended = True
        return [StreamEnd()]


class StreamEncoder:
    """Writes Anthropic's event sequence. Content blocks open as text or tool calls arrive;
    the stop reason and usage go out in `message_delta` when the provider's stream ends.
    `message_start` always comes first, even when the provider's stream began otherwise."""

    __slots__ = (
        "_block",
        "_closed",
        "_model",
        "_open",
        "_request",
        "_started",
        "_stop",
        "_thinking",
        "_tool_blocks",
        "_usage",
    )

    def __init__(self, request: ChatRequest, model: str) -> None:
        self._request = request
        self._model = model
        self._thinking = Reasoning("")
        """The open thinking block's signature so far (its text went out as it came)."""
        self._started = False
        self._closed = False
        """The stream ended (`message_stop` or an error): nothing may follow."""
        self._block = -1
        self._open: str | None = None
        """The type of the open content block (`text`, `tool_use`), None when none is."""
        self._tool_blocks: dict[int, int] = {}
        self._stop = Finish("stop")
        self._usage: Usage | None = None

    def encode(self, event: StreamEvent) -> bytes:
        if self._closed:
            return b""
        if isinstance(event, StreamStart):
            return self._message_start(event) if not self._started else b""
        opening = (
            b"" if self._started else self._message_start(StreamStart(new_id("msg_"), self._model))
        )
        return opening + self._content(event)

    def _message_start(self, start: StreamStart) -> bytes:
        self._started = True
        self._usage = start.usage
        message: JsonObject = {
            "id": start.id,
            "type": "message",
            "role": "assistant",
            "model": start.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_object(start.usage or Usage(0, 0)),
        }
        return _event("message_start", {"message": message})

    def _content(self, event: StreamEvent) -> bytes:  # noqa: PLR0911 - one answer per event kind
        if isinstance(event, ReasoningDelta):
            if self._request.reasoning_shown:
                return self._reasoning(event)
            self._hide(event)
            return b""
        if isinstance(event, TextDelta):
            opening = b"" if self._open == "text" else self._start({"type": "text", "text": ""})
            delta = {"index": self._block, "delta": {"type": "text_delta", "text": event.text}}
            return opening + _event("content_block_delta", delta)
        if isinstance(event, ToolCallStart):
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            opening = self._start(block)
            self._tool_blocks[event.index] = self._block
            return opening
        if isinstance(event, ToolArgumentsDelta):
            index = self._tool_blocks.get(event.index)
            if index is None:
                return b""
            delta = {"type": "input_json_delta", "partial_json": event.fragment}
            return _event("content_block_delta", {"index": index, "delta": delta})
        if isinstance(event, Finish):
            self._stop = event
            return b""
        if isinstance(event, UsageReport):
            self._usage = event.usage
            return b""
        if isinstance(event, StreamFailed | StreamEnd):
            self._closed = True
        if isinstance(event, StreamFailed):
            return stream_error(event.error)
        if isinstance(event, StreamEnd):
            return self._close() + self._hidden_block() + self._finish()
        return b""

    def _hide(self, event: ReasoningDelta) -> None:
        """Thinking the client is not shown: gathered, for its signature block."""
        hidden = self._thinking
        self._thinking = Reasoning(
            hidden.text + event.text,
            event.signature or hidden.signature,
            event.origin or hidden.origin,
        )

    def _hidden_block(self) -> bytes:
        """The signed, empty thinking block of hidden thinking its provider needs back."""
        hidden, self._thinking = self._thinking, Reasoning("")
        if self._request.reasoning_shown or hidden.origin is None:
            return b""
        block = {"type": "thinking", "thinking": "", "signature": ""}
        self._block += 1
        start = {"index": self._block, "content_block": block}
        delta = {"type": "signature_delta", "signature": sign(hidden, with_text=True)}
        return (
            _event("content_block_start", start)
            + _event("content_block_delta", {"index": self._block, "delta": delta})
            + _event("content_block_stop", {"index": self._block})
        )

    def _reasoning(self, event: ReasoningDelta) -> bytes:
        opening = b""
        if self._open != "thinking":
            opening = self._start({"type": "thinking", "thinking": "", "signature": ""})
            self._thinking = Reasoning("")
        if event.signature:
            self._thinking = Reasoning("", event.signature, event.origin)
        if not event.text:
            return opening
        delta = {"index": self._block, "delta": {"type": "thinking_delta", "thinking": event.text}}
        return opening + _event("content_block_delta", delta)

    def _start(self, block: JsonObject) -> bytes:
        closing = self._close()
        if block["type"] != "thinking":
            closing += self._hidden_block()
        self._block += 1
        self._open = block["type"]
        start = {"index": self._block, "content_block": block}
        return closing + _event("content_block_start", start)

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        signature = b""
        if self._open == "thinking":
            # Anthropic signs a thinking block just before it closes; the gateway does too.
            delta = {"type": "signature_delta", "signature": sign(self._thinking)}
            signature = _event("content_block_delta", {"index": self._block, "delta": delta})
        self._open = None
        return signature + _event("content_block_stop", {"index": self._block})

    def _finish(self) -> bytes:
        delta = {
            "stop_reason": ANTHROPIC_STOP[self._stop.reason],
            "stop_sequence": self._stop.stop_sequence,
        }
        fields: JsonObject = {"delta": delta, "usage": usage_object(self._usage or Usage(0, 0))}
        if self._request.context_edits is not None:
            fields["context_management"] = context_management(self._request)
        return _event("message_delta", fields) + _event("message_stop", {})


def _event(kind: str, fields: JsonObject) -> bytes:
    data = orjson.dumps({"type": kind} | fields)
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def stream_error(error: ApiError, sent: int = 0) -> bytes:
    """Anthropic's `error` event: the SDKs raise it from their stream iterators. (`sent`
    does not matter: these events are not numbered.)"""
    body = error_object(error)
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"


def final_usage(_event: str | None, data: JsonObject) -> JsonObject | None:
    """`message_delta`'s usage: the whole call's (`message_start`'s holds only the input)."""
    usage = data.get("usage")
    return usage if data.get("type") == "message_delta" and isinstance(usage, dict) else None
