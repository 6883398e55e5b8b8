"""AWS's binary event stream (`application/vnd.amazon.eventstream`), read incrementally.

Each frame — a prelude with its lengths, headers (`:event-type`, `:message-type`, …), a JSON
payload, each part CRC-checked by botocore's parser — becomes one block whose data is
`{event type: payload}`, the shape AWS SDKs give (an exception frame: `{exception type:
payload}`). Frames never reach clients as they are: every stream in this framing is
translated. A frame that fails its checks ends the stream with an `internalServerException`
event: nothing after it can be trusted.
"""

from __future__ import annotations

from botocore.eventstream import EventStreamBuffer, ParserError

from extproc.sse import MAX_EVENT, Block, Event, EventTooLarge

EVENT_STREAM_TYPE = "application/vnd.amazon.eventstream"
CORRUPTED = b'{"internalServerException":{"message":"The provider\'s event stream is corrupted."}}'


class EventStreamParser:
    __slots__ = ("_buffer", "_failed", "_limit", "_pending")

    def __init__(self, limit: int = MAX_EVENT) -> None:
        """`limit`: the largest frame taken (bytes); a larger one raises EventTooLarge."""
        self._buffer = EventStreamBuffer()
        self._failed = False
        self._limit = limit
        self._pending = 0
        """Bytes received and not yet read as frames."""

    def feed(self, chunk: bytes, *, end: bool = False) -> list[Block]:
        """The blocks for the frames this chunk completes; a frame cut at the end of the body
        is dropped (its stream was cut)."""
        if self._failed:
            return []
        self._buffer.add_data(chunk)
        self._pending += len(chunk)
        blocks: list[Block] = []
        try:
            for message in self._buffer:
                self._pending -= message.prelude.total_length
                blocks.append(_block(message.headers, message.payload))
        except ParserError:
            self._failed = True
            blocks.append(Block(b"", Event(None, CORRUPTED.decode())))
        if self._pending > self._limit:
            raise EventTooLarge(f"a streamed frame over {self._limit} bytes", blocks)
        return blocks


def _block(headers: dict[str, object], payload: bytes) -> Block:
    kind = headers.get(":event-type") or headers.get(":exception-type") or "unknown"
    data = b'{"' + str(kind).encode() + b'":' + (payload or b"{}") + b"}"
    return Block(b"", Event(None, data.decode("utf-8", "replace")))
