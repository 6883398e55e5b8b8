"""Responses event streams ⇄ neutral stream events.

A Responses stream names each event (`event: response.output_text.delta`) and numbers them
from 0 (`sequence_number`); output arrives as items (a message, a function call), each opened
(`response.output_item.added`), filled by deltas, and closed with its whole content
(`….done`, `response.output_item.done`). The last event carries the whole response with its
usage: `response.completed`, or `response.incomplete` when the output cap cut it short. There
is no `[DONE]`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson

from extproc.errors import ApiError
from extproc.translators.common import as_object, new_id
from extproc.translators.ir import (
    ChatRequest,
    Finish,
    JsonObject,
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
from extproc.translators.openai.errors import error_from_object
from extproc.translators.responses.answer import (
    INCOMPLETE_REASONS,
    function_call_item,
    message_item,
    read_model,
    read_usage,
    response_object,
)
from extproc.translators.schema import EventData
from extproc.usage import Usage

_ENDINGS = ("response.completed", "response.incomplete")
_REASONING_DELTAS = ("response.reasoning_text.delta", "response.reasoning_summary_text.delta")


class StreamDecoder:
    """Reads a provider's Responses stream."""

    __slots__ = ("_calls", "_ended", "_model")

    def __init__(self, model: str) -> None:
        self._model = model
        self._ended = False
        self._calls: dict[int, int] = {}
        """Output index of each function call item → its index among the calls."""

    def decode(self, data: EventData) -> list[StreamEvent]:  # noqa: PLR0911 - one per kind
        if not isinstance(data, dict):
            return []
        kind = data.get("type")
        if kind == "response.created":
            response = as_object(data.get("response"))
            return [StreamStart(response.get("id") or new_id("resp_"), self._model_of(response))]
        if kind == "response.output_text.delta" or kind in _REASONING_DELTAS:
            delta = data.get("delta")
            if not isinstance(delta, str) or not delta:
                return []
            return [
                TextDelta(delta) if kind == "response.output_text.delta" else ReasoningDelta(delta)
            ]
        if kind == "response.output_item.added":
            return self._item_added(data)
        if kind == "response.function_call_arguments.delta":
            index = self._calls.get(data.get("output_index", -1))
            delta = data.get("delta")
            if index is None or not isinstance(delta, str) or not delta:
                return []
            return [ToolArgumentsDelta(index, delta)]
        if kind in _ENDINGS:
            return self._ending(as_object(data.get("response")))
        if kind == "response.failed":
            error = as_object(as_object(data.get("response")).get("error"))
            return [StreamFailed(error_from_object(error, 500))]
        if kind == "error":
            return [StreamFailed(error_from_object(data, 500))]
        return []

    def _item_added(self, data: JsonObject) -> list[StreamEvent]:
        item = as_object(data.get("item"))
        output_index = data.get("output_index")
        if item.get("type") != "function_call" or not isinstance(output_index, int):
            return []
        index = self._calls[output_index] = len(self._calls)
        call_id = item.get("call_id") or new_id("call_")
        return [ToolCallStart(index, call_id, item.get("name") or "")]

    def _ending(self, response: JsonObject) -> list[StreamEvent]:
        self._ended = True
        stop: StopReason = "tool_calls" if self._calls else "stop"
        if response.get("status") == "incomplete":
            reason = as_object(response.get("incomplete_details")).get("reason")
            stop = INCOMPLETE_REASONS.get(reason or "", "other")
        events: list[StreamEvent] = [Finish(stop)]
        usage = read_usage(response)
        if usage is not None:
            events.append(UsageReport(usage))
        return [*events, StreamEnd()]

    def _model_of(self, response: JsonObject) -> str:
        return read_model(response) or self._model

    def end(self) -> list[StreamEvent]:
        return []  # a stream without its last event was cut: nothing to add


@dataclass(slots=True)
class _Item:
    id: str
    output_index: int
    text: list[str] = field(default_factory=list)
    call: tuple[str, str] | None = None
    """(call id, name) for a function call."""


class StreamEncoder:
    """Writes a Responses stream from neutral events, keeping what the closing events and the
    final response repeat (each item's whole content, the usage)."""

    __slots__ = (
        "_calls",
        "_closed",
        "_created",
        "_id",
        "_item",
        "_model",
        "_output",
        "_request",
        "_sequence",
        "_stop",
        "_usage",
    )

    def __init__(self, request: ChatRequest, model: str) -> None:
        self._request = request
        self._id = new_id("resp_")
        self._model = model
        self._created = int(time.time())
        self._sequence = 0
        self._output: list[JsonObject] = []
        """The items closed so far, as the final response lists them."""
        self._item: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self._stop: StopReason = "stop"
        self._usage: Usage | None = None
        self._closed = False

    def encode(self, event: StreamEvent) -> bytes:  # noqa: PLR0911 - one answer per event kind
        if self._closed:
            return b""
        if isinstance(event, StreamStart):
            if event.id.startswith("resp_"):
                self._id = event.id
            self._model = event.model
            response = self._response(None)
            return self._event("response.created", response=response) + self._event(
                "response.in_progress", response=response
            )
        if isinstance(event, TextDelta):
            return self._text(event.text)
        if isinstance(event, ToolCallStart):
            return self._call_started(event)
        if isinstance(event, ToolArgumentsDelta):
            return self._arguments(event)
        if isinstance(event, Finish):
            self._stop = event.reason
            return b""
        if isinstance(event, UsageReport):
            self._usage = event.usage
            return b""
        if isinstance(event, StreamFailed):
            self._closed = True
            return self._error(event.error)
        if isinstance(event, StreamEnd):
            self._closed = True
            ending = (
                "response.incomplete"
                if self._stop in ("length", "content_filter")
                else "response.completed"
            )
            return self._close_item() + self._event(ending, response=self._response(self._stop))
        return b""  # reasoning: only the model that wrote it can use it

    def _text(self, text: str) -> bytes:
        out = b""
        item = self._item
        if item is None or item.call is not None:
            out += self._close_item()
            item = self._item = _Item(new_id("msg_"), len(self._output))
            out += self._event(
                "response.output_item.added",
                output_index=item.output_index,
                item=message_item(item.id, "", status="in_progress"),
            )
            out += self._event(
                "response.content_part.added",
                item_id=item.id,
                output_index=item.output_index,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        item.text.append(text)
        return out + self._event(
            "response.output_text.delta",
            item_id=item.id,
            output_index=item.output_index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _call_started(self, event: ToolCallStart) -> bytes:
        out = self._close_item()
        item = self._item = _Item(new_id("fc_"), len(self._output), call=(event.id, event.name))
        self._calls[event.index] = item
        return out + self._event(
            "response.output_item.added",
            output_index=item.output_index,
            item=function_call_item(
                item.id, (event.id, event.name), "", self._request, status="in_progress"
            ),
        )

    def _arguments(self, event: ToolArgumentsDelta) -> bytes:
        item = self._calls.get(event.index)
        if item is None or item is not self._item:
            return b""  # arguments of a call already closed: Responses items do not interleave
        item.text.append(event.fragment)
        return self._event(
            "response.function_call_arguments.delta",
            item_id=item.id,
            output_index=item.output_index,
            delta=event.fragment,
        )

    def _close_item(self) -> bytes:
        item, self._item = self._item, None
        if item is None:
            return b""
        text = "".join(item.text)
        where = {"item_id": item.id, "output_index": item.output_index}
        if item.call is not None:
            done = function_call_item(item.id, item.call, text, self._request)
            out = self._event("response.function_call_arguments.done", **where, arguments=text)
        else:
            done = message_item(item.id, text)
            part = done["content"][0]
            out = self._event(
                "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
            )
            out += self._event("response.content_part.done", **where, content_index=0, part=part)
        self._output.append(done)
        return out + self._event(
            "response.output_item.done", output_index=item.output_index, item=done
        )

    def _response(self, stop: StopReason | None) -> JsonObject:
        usage = self._usage if stop is not None else None
        return response_object(
            self._id, self._model, self._created, list(self._output), stop, usage
        )

    def _error(self, error: ApiError) -> bytes:
        return stream_error(error, self._sequence)

    def _event(self, kind: str, **fields: object) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def stream_error(error: ApiError, sent: int) -> bytes:
    """The `error` event that ends a stream early; `sent`: the events the client got (the
    error's sequence number)."""
    data = {
        "type": "error",
        "code": error.code or error.type,
        "message": error.message,
        "param": error.param,
        "sequence_number": sent,
    }
    return b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"


def final_usage(_event: str | None, data: JsonObject) -> JsonObject | None:
    """The usage of the response a finished stream ends with."""
    if data.get("type") not in ("response.completed", "response.incomplete"):
        return None
    response = data.get("response")
    usage = response.get("usage") if isinstance(response, dict) else None
    return usage if isinstance(usage, dict) else None
