"""Bedrock ConverseStream events → neutral stream events.

Each event arrives as one frame of the binary event stream (see `extproc.eventstream`); the
framing layer hands this decoder `{event type: payload}`, the shape AWS SDKs give too:
`messageStart`, `contentBlockStart` (a tool call's id and name), `contentBlockDelta` (text,
tool input JSON, reasoning), `contentBlockStop`, `messageStop` (the stop reason), `metadata`
(the usage), or an exception (`throttlingException`, `modelStreamErrorException`, …).
"""

from __future__ import annotations

from extproc.errors import ApiError
from extproc.translators.bedrock.answer import STOP_REASONS, read_usage
from extproc.translators.bedrock.request import KIND
from extproc.translators.common import as_object, error_type_for, new_id
from extproc.translators.ir import (
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
from extproc.translators.schema import EventData

EXCEPTION_STATUS = {
    "validationException": 400,
    "throttlingException": 429,
    "serviceUnavailableException": 503,
    "modelStreamErrorException": 424,
    "internalServerException": 500,
}


class StreamDecoder:
    __slots__ = ("_calls", "_ended", "_model")

    def __init__(self, model: str) -> None:
        self._model = model
        self._calls: dict[int, int] = {}
        """Content block index of each tool call → its index among the calls."""
        self._ended = False

    def decode(self, data: EventData) -> list[StreamEvent]:  # noqa: PLR0911 - one per kind
        if not isinstance(data, dict) or len(data) != 1:
            return []
        [(kind, value)] = data.items()
        payload = as_object(value)
        if kind == "messageStart":
            return [StreamStart(new_id("msg_bdrk_"), self._model)]
        if kind == "contentBlockStart":
            use = as_object(as_object(payload.get("start")).get("toolUse"))
            block = payload.get("contentBlockIndex")
            if not use or not isinstance(block, int):
                return []
            index = self._calls[block] = len(self._calls)
            return [
                ToolCallStart(
                    index, use.get("toolUseId") or new_id("tooluse_"), use.get("name") or ""
                )
            ]
        if kind == "contentBlockDelta":
            return self._delta(payload)
        if kind == "messageStop":
            return [Finish(STOP_REASONS.get(payload.get("stopReason") or "", "other"))]
        if kind == "metadata":
            self._ended = True
            usage = read_usage(payload)
            return [*([UsageReport(usage)] if usage is not None else []), StreamEnd()]
        if kind.endswith("Exception"):
            status = EXCEPTION_STATUS.get(kind, 500)
            message = payload.get("message") or f"The provider failed the stream ({kind})."
            return [StreamFailed(ApiError(status, str(message), error_type_for(status), code=kind))]
        return []

    def _delta(self, payload: JsonObject) -> list[StreamEvent]:
        delta = as_object(payload.get("delta"))
        text = delta.get("text")
        if isinstance(text, str) and text:
            return [TextDelta(text)]
        reasoning = as_object(delta.get("reasoningContent"))
        if isinstance(reasoning.get("text"), str) and reasoning["text"]:
            return [ReasoningDelta(reasoning["text"])]
        if isinstance(reasoning.get("signature"), str) and reasoning["signature"]:
            return [ReasoningDelta("", reasoning["signature"], KIND)]
        fragment = as_object(delta.get("toolUse")).get("input")
        block = payload.get("contentBlockIndex")
        index = self._calls.get(block) if isinstance(block, int) else None
        if isinstance(fragment, str) and fragment and index is not None:
            return [ToolArgumentsDelta(index, fragment)]
        return []

    def end(self) -> list[StreamEvent]:
        return []  # a stream without its metadata event was cut: nothing to add
