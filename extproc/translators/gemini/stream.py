"""Gemini's `streamGenerateContent?alt=sse` → neutral stream events.

Each event is a whole `GenerateContentResponse` with the next piece of the candidate: text
parts, complete `functionCall` parts, and `usageMetadata` with the counts so far. There is no
end event, and some models repeat `finishReason` on every chunk: the stop is known only when
the body ends.
"""

from __future__ import annotations

from extproc.translators.common import arguments_text, new_id
from extproc.translators.gemini.answer import (
    blocked,
    candidate_parts,
    finish_of,
    function_call,
    is_thought,
    read_model,
    read_usage,
    stop_reason,
)
from extproc.translators.gemini.errors import error_from_object
from extproc.translators.ir import (
    Finish,
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


class StreamDecoder:
    __slots__ = ("_blocked", "_calls", "_ended", "_finish", "_model", "_started")

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._calls = 0
        self._finish: str | None = None
        self._blocked = False
        self._ended = False

    def decode(self, data: EventData) -> list[StreamEvent]:
        if isinstance(data, str):
            return []
        if isinstance(data.get("error"), dict):
            return [StreamFailed(error_from_object(data["error"], 500))]
        usage = read_usage(data)
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            answer_id = data.get("responseId") or new_id("chatcmpl-")
            events.append(StreamStart(answer_id, read_model(data) or self._model, usage))
        for part in candidate_parts(data):
            call = function_call(part)
            if call is not None:
                events.append(ToolCallStart(self._calls, call.id, call.name))
                events.append(ToolArgumentsDelta(self._calls, arguments_text(call.arguments)))
                self._calls += 1
            elif isinstance(part.get("text"), str) and part["text"]:
                text = part["text"]
                events.append(ReasoningDelta(text) if is_thought(part) else TextDelta(text))
        self._finish = finish_of(data) or self._finish
        self._blocked = self._blocked or blocked(data)
        if usage is not None:
            events.append(UsageReport(usage))
        return events

    def end(self) -> list[StreamEvent]:
        if self._ended:
            return []
        self._ended = True
        return [Finish(stop_reason(self._finish, self._calls > 0, self._blocked)), StreamEnd()]
