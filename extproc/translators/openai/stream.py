"""OpenAI event streams: `chat.completion.chunk` (and legacy completion) events ⇄ neutral
stream events, the error event that ends a stream early, and hiding the usage the gateway
asked for on the client's behalf."""

from __future__ import annotations

import time

import orjson

from extproc.errors import ApiError, openai_error_body
from extproc.translators.common import as_object, new_id
from extproc.translators.ir import (
    ChatRequest,
    Finish,
    JsonObject,
    ReasoningDelta,
    StreamEnd,
    StreamEvent,
    StreamFailed,
    StreamStart,
    TextDelta,
    ToolArgumentsDelta,
    ToolCallStart,
    UsageReport,
)
from extproc.translators.openai.answer import (
    FINISH_REASONS,
    OPENAI_FINISH,
    read_model,
    read_usage,
    usage_object,
)
from extproc.translators.openai.errors import error_from_object
from extproc.translators.schema import EventData
from extproc.usage import Usage

DONE = "[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"
_NULL_USAGE = (b',"usage":null', b'"usage":null,')


class StreamDecoder:
    __slots__ = ("_ended", "_model", "_started", "_tool_calls")

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._ended = False
        self._tool_calls: set[int] = set()

    def decode(self, data: EventData) -> list[StreamEvent]:
        if isinstance(data, str):
            if data == DONE and not self._ended:
                self._ended = True
                return [StreamEnd()]
            return []
        if isinstance(data.get("error"), dict):
            return [StreamFailed(error_from_object(data["error"], 500))]
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            events.append(
                StreamStart(data.get("id") or new_id("chatcmpl-"), read_model(data) or self._model)
            )
        for choice in data.get("choices") or ():
            if isinstance(choice, dict):
                self._choice(choice, events)
        usage = read_usage(data)
        if usage is not None:
            events.append(UsageReport(usage))
        return events

    def _choice(self, choice: JsonObject, events: list[StreamEvent]) -> None:
        delta = as_object(choice.get("delta"))
        for text in (choice.get("text"), delta.get("content"), delta.get("refusal")):
            if isinstance(text, str) and text:
                events.append(TextDelta(text))
        for name in ("reasoning_content", "reasoning"):
            if isinstance(delta.get(name), str) and delta[name]:
                events.append(ReasoningDelta(delta[name]))
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                self._tool_call(call, events)
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            events.append(Finish(FINISH_REASONS.get(reason, "other")))

    def _tool_call(self, call: JsonObject, events: list[StreamEvent]) -> None:
        index = call.get("index")
        index = index if isinstance(index, int) else 0
        function = as_object(call.get("function"))
        if index not in self._tool_calls and call.get("id"):
            self._tool_calls.add(index)
            events.append(ToolCallStart(index, call["id"], function.get("name") or ""))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            events.append(ToolArgumentsDelta(index, arguments))

    def end(self) -> list[StreamEvent]:
        if self._ended:
            return []
        self._ended = True
        return [StreamEnd()]


class StreamEncoder:
    """Writes `chat.completion.chunk` events; the usage chunk only when the client asked
    for it (`stream_options.include_usage`), with `"usage": null` on the others as OpenAI
    does."""

    __slots__ = ("_base", "_closed", "_usage", "_with_usage")

    def __init__(self, request: ChatRequest, model: str) -> None:
        self._with_usage = request.stream_usage
        self._usage: Usage | None = None
        self._closed = False
        """An error event ended the client's stream: nothing may follow it."""
        self._base: JsonObject = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def encode(self, event: StreamEvent) -> bytes:  # noqa: PLR0911 - one answer per event kind
        if self._closed:
            return b""
        if isinstance(event, StreamStart):
            self._base |= {"id": event.id, "model": event.model}
            return self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text})
        if isinstance(event, ToolCallStart):
            call = {"index": event.index, "id": event.id, "type": "function"}
            call["function"] = {"name": event.name, "arguments": ""}
            return self._chunk({"tool_calls": [call]})
        if isinstance(event, ToolArgumentsDelta):
            call = {"index": event.index, "function": {"arguments": event.fragment}}
            return self._chunk({"tool_calls": [call]})
        if isinstance(event, Finish):
            return self._chunk({}, OPENAI_FINISH[event.reason])
        if isinstance(event, UsageReport):
            self._usage = event.usage
            return b""
        if isinstance(event, StreamFailed | StreamEnd):
            self._closed = True
        if isinstance(event, StreamFailed):
            return stream_error(event.error)
        if isinstance(event, StreamEnd):
            if self._with_usage and self._usage is not None:
                chunk = self._base | {"choices": [], "usage": usage_object(self._usage)}
                return b"data: " + orjson.dumps(chunk) + b"\n\n" + DONE_EVENT
            return DONE_EVENT
        return b""  # reasoning: Chat Completions has no field for it

    def _chunk(self, delta: JsonObject, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk = self._base | {"choices": [choice]}
        if self._with_usage:
            chunk["usage"] = None
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stream_error(error: ApiError, sent: int = 0) -> bytes:
    """An error event then `[DONE]`: the OpenAI SDKs raise `APIError` with its message.
    (`sent` does not matter: these events are not numbered.)"""
    return b"data: " + openai_error_body(error) + b"\n\n" + DONE_EVENT


def without_usage(raw: bytes, payload: JsonObject) -> bytes:
    """The event without the usage the client did not ask for: the usage-only chunk goes,
    and the `"usage": null` on other chunks is removed, bytes otherwise untouched."""
    if "usage" not in payload:
        return raw
    if payload["usage"] is not None and not payload.get("choices"):
        return b""
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


def final_usage(_event: str | None, data: JsonObject) -> JsonObject | None:
    """The chunk with the stream's usage (every other chunk has none, or null)."""
    usage = data.get("usage")
    return usage if isinstance(usage, dict) else None
