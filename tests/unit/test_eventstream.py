"""AWS's binary event stream read incrementally: frames split anywhere still decode, whole
and in order; a frame that fails its CRC ends the stream with an exception event."""

from __future__ import annotations

import orjson
import pytest
from mockprovider.bedrock import event, frame

from extproc.eventstream import EventStreamParser

FRAMES = [
    event("messageStart", {"role": "assistant"}),
    event("contentBlockDelta", {"delta": {"text": "Hé"}, "contentBlockIndex": 0}),
    frame(
        {":exception-type": "throttlingException", ":message-type": "exception"},
        b'{"message":"slow down"}',
    ),
]
STREAM = b"".join(FRAMES)
EXPECTED = [
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"delta": {"text": "Hé"}, "contentBlockIndex": 0}},
    {"throttlingException": {"message": "slow down"}},
]


def decoded(chunks: list[bytes]) -> list[object]:
    parser = EventStreamParser()
    blocks = [block for chunk in chunks for block in parser.feed(chunk)]
    return [orjson.loads(block.event.data) for block in blocks if block.event is not None]


@pytest.mark.parametrize("split", range(1, len(STREAM)))
def test_frames_split_at_any_byte_decode_whole(split: int) -> None:
    assert decoded([STREAM[:split], STREAM[split:]]) == EXPECTED


def test_frames_fed_a_byte_at_a_time_decode_whole() -> None:
    assert decoded([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@pytest.mark.parametrize("where", [2, 9, 20, -2])
def test_a_corrupted_frame_ends_the_stream_with_an_exception_event(where: int) -> None:
    broken = bytearray(FRAMES[1])
    broken[where] ^= 0xFF
    events = decoded([FRAMES[0], bytes(broken), FRAMES[2]])

    assert events[0] == EXPECTED[0]
    assert list(events[1]) == ["internalServerException"]  # type: ignore[call-overload]
    assert len(events) == 2, "nothing after a corrupted frame is trusted"
