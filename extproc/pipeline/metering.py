"""What a forwarded request really used, read from the provider's response as it passes.

JSON answers arrive whole (buffered) and carry their usage; event streams go through a relay
that reads the usage events and counts the content. When the real figures never come, the
meter says what it can vouch for: nothing if the provider failed or never answered, the
streamed content so far if a stream was cut, the reserved estimate if a JSON answer was lost
after a success.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.guardrails.policy import Screen
from extproc.pipeline.relay import StreamRelay
from extproc.sse import MAX_EVENT
from extproc.translators.translation import Translation
from extproc.usage import Usage


class Meter:
    __slots__ = (
        "_estimate",
        "_json_body",
        "_keep_text",
        "_max_event",
        "_parsed",
        "_screen",
        "_started",
        "_translation",
        "relay",
        "status",
    )

    def __init__(
        self,
        estimate: Usage,
        translation: Translation,
        *,
        started: float,
        keep_text: bool = False,
        max_event: int = MAX_EVENT,
        screen: Screen | None = None,
    ) -> None:
        """`screen`: the output guardrails a stream goes through."""
        self._estimate = estimate
        self._screen = screen
        self._max_event = max_event
        self._translation = translation
        self._started = started
        self._keep_text = keep_text
        self._json_body: bytes | None = None
        self._parsed: Any = None
        self.status: int | None = None
        self.relay: StreamRelay | None = None

    def answered_by(self, translation: Translation) -> None:
        """Another target than the one first prepared for answered (a fallback)."""
        self._translation = translation

    @property
    def estimate(self) -> Usage:
        return self._estimate

    def on_headers(self, status: int, content_type: str) -> bool:
        """Note the response status; True when the body is an event stream to relay."""
        self.status = status
        if status == 200 and content_type.startswith(self._translation.provider.stream_type):
            self.relay = StreamRelay(
                self._translation,
                started=self._started,
                keep_text=self._keep_text,
                max_event=self._max_event,
                screen=self._screen,
            )
            return True
        return False

    def on_json_body(self, body: bytes, *, end: bool) -> None:
        if end and self.succeeded:
            self._json_body = body  # parsed when needed, after the client has its answer

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def usage(self, reserved_output: int) -> Usage | None:
        """The usage to charge; None when the request is to be refunded in full.
        A stream the gateway stopped is charged the output it had reserved."""
        if not self.succeeded:
            return None
        if self.relay is not None:
            return self._streamed_usage(self.relay, reserved_output)
        return self._translation.provider.read_usage(self.answer()) or self._estimate

    def response_model(self) -> str | None:
        if self.relay is not None:
            return self.relay.usage.model
        return self._translation.provider.read_model(self.answer())

    def answer_id(self) -> str | None:
        """The id the provider gave its answer (what a stored response is fetched by)."""
        if self.relay is not None:
            return self.relay.usage.id
        answer = self.answer()
        answer_id = answer.get("id") if isinstance(answer, dict) else None
        return answer_id if isinstance(answer_id, str) else None

    def output_text(self) -> str:
        if self.relay is not None:
            return "".join(self.relay.usage.texts or ())
        return self._translation.provider.read_text(self.answer())

    def answer(self) -> Any:
        """The JSON answer, parsed once (None when there is none or it is not JSON)."""
        if self._parsed is None and self._json_body is not None:
            try:
                self._parsed = orjson.loads(self._json_body)
            except orjson.JSONDecodeError:
                self._parsed = None
            self._json_body = None
        return self._parsed

    def _streamed_usage(self, relay: StreamRelay, reserved_output: int) -> Usage:
        if relay.stopped:
            return Usage(self._estimate.input_tokens, reserved_output)
        return relay.usage.reported() or Usage(
            self._estimate.input_tokens, relay.usage.estimated_output()
        )
