"""What a forwarded request really used, read from the provider's response as it passes.

JSON answers arrive whole (buffered) and carry `usage`; event streams arrive chunk by chunk
and report usage in a final event. When the real figures never come, the meter says what it
can vouch for: nothing if the provider failed or never answered, the streamed content so far
if a stream was cut, the reserved estimate if a JSON answer was lost after a success.
"""

from __future__ import annotations

import orjson

from extproc.sse import EventParser
from extproc.usage import StreamUsage, Usage, read_usage

EVENT_STREAM = "text/event-stream"


class Meter:
    __slots__ = ("_estimate", "_json_body", "_parser", "_status", "_stream")

    def __init__(self, estimate: Usage) -> None:
        self._estimate = estimate
        self._status: int | None = None
        self._parser: EventParser | None = None
        self._stream: StreamUsage | None = None
        self._json_body: bytes | None = None

    def on_headers(self, status: int, content_type: str) -> bool:
        """Note the response status; True when the body is an event stream to follow."""
        self._status = status
        if status == 200 and content_type.startswith(EVENT_STREAM):
            self._parser = EventParser()
            self._stream = StreamUsage()
            return True
        return False

    def on_body(self, chunk: bytes, *, end: bool) -> None:
        if self._parser is not None and self._stream is not None:
            for event in self._parser.feed(chunk, end=end):
                self._stream.observe(event)
        elif end and self.succeeded:
            self._json_body = chunk  # parsed by usage(), after the client has its answer

    @property
    def succeeded(self) -> bool:
        return self._status is not None and 200 <= self._status < 300

    def usage(self) -> Usage | None:
        """The usage to charge; None when the request is to be refunded in full."""
        if not self.succeeded:
            return None
        if self._stream is not None:
            reported = self._stream.reported()
            if reported is not None:
                return reported
            return Usage(self._estimate.input_tokens, self._stream.estimated_output())
        if self._json_body is None:
            return self._estimate
        try:
            return read_usage(orjson.loads(self._json_body)) or self._estimate
        except orjson.JSONDecodeError:
            return self._estimate
