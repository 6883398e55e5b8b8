"""`Connection.data_received` under seeded random mutations of a valid session: bytes flipped,
inserted, dropped, frames repeated, reads split anywhere. Whatever comes, nothing escapes
the protocol object, what it buffers stays bounded, it only ever writes well-formed frames,
and nothing is logged as a failure of the server's own."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from google.protobuf.struct_pb2 import ListValue
from hpack import Encoder
from hyperframe.frame import (
    DataFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from extproc.transport import Method
from extproc.transport.budget import Budget
from extproc.transport.connection import MAX_FRAME, Connection
from extproc.transport.frames import FRAME_HEADER_SIZE
from tests.unit.test_transport import CollectingTransport, frames_in
from tests.unit.test_transport_oracle import SINK, _sink

SEEDS = range(400)
MAX_MESSAGE = 1 << 16


def session() -> list[bytes]:
    """A valid client session, frame by frame."""
    block = Encoder().encode(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", SINK),
            (":authority", "fuzz"),
            ("content-type", "application/grpc"),
        ]
    )
    message = ListValue()
    message.extend(["fuzz" * 50, "x"])
    raw = message.SerializeToString()
    framed = b"\x00" + len(raw).to_bytes(4, "big") + raw
    frames = [
        SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 1 << 20}),
        HeadersFrame(1, data=block, flags=["END_HEADERS"]),
        DataFrame(1, data=framed * 3),
        WindowUpdateFrame(0, window_increment=1000),
        HeadersFrame(3, data=Encoder().encode([(":path", SINK)]), flags=["END_HEADERS"]),
        DataFrame(1, data=framed[:50]),
        PingFrame(0, opaque_data=b"fuzzfuzz"),
        DataFrame(1, data=framed[50:], flags=["END_STREAM"]),
        RstStreamFrame(3, error_code=8),
        HeadersFrame(5, data=block, flags=["END_HEADERS", "END_STREAM"]),
    ]
    return [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", *(frame.serialize() for frame in frames)]


def mutated(rng: random.Random) -> bytes:
    pieces = session()
    for _ in range(rng.randint(1, 4)):
        index = rng.randrange(len(pieces))
        piece = bytearray(pieces[index])
        operation = rng.choice(["flip", "insert", "drop", "repeat", "length", "swap"])
        if operation == "flip" and piece:
            piece[rng.randrange(len(piece))] ^= 1 << rng.randrange(8)
        elif operation == "insert":
            at = rng.randrange(len(piece) + 1)
            piece[at:at] = rng.randbytes(rng.randint(1, 40))
        elif operation == "drop" and piece:
            at = rng.randrange(len(piece))
            del piece[at : at + rng.randint(1, 20)]
        elif operation == "repeat":
            pieces.insert(index, bytes(piece))
        elif operation == "length" and len(piece) >= 3:
            piece[0:3] = rng.randrange(1 << 24).to_bytes(3, "big")
        elif operation == "swap" and index + 1 < len(pieces):
            pieces[index], pieces[index + 1] = pieces[index + 1], pieces[index]
            continue
        pieces[index] = bytes(piece)
    return b"".join(pieces)


async def feed(data: bytes, rng: random.Random) -> tuple[Connection, CollectingTransport]:
    tasks: list[asyncio.Task[None]] = []
    connection = Connection(
        {SINK: Method(_sink, ListValue)},
        lambda task, call: tasks.append(task),
        max_message=MAX_MESSAGE,
        max_streams=8,
        budget=Budget(4 * MAX_MESSAGE),
    )
    transport = CollectingTransport()
    connection.connection_made(transport)
    position = 0
    while position < len(data):
        size = rng.choice([1, 2, 9, 64, 1000, len(data)])
        connection.data_received(data[position : position + size])
        position += size
        assert len(connection._buffer) <= FRAME_HEADER_SIZE + MAX_FRAME
        await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return connection, transport


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_damage_to_a_session_is_survived(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(seed)
    with caplog.at_level(logging.WARNING):
        _, transport = await feed(mutated(rng), rng)

    frames_in(bytes(transport.written))  # well-formed frames only, or this raises
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not failures, [record.getMessage() for record in failures]
