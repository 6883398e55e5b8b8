"""The transport against h2 as an oracle: the same frame sequences go into h2's server side
and into `Connection`, and after every step both must agree on whether the peer broke the
protocol, and if so on the class of error (RFC 9113's error codes).

Errors are compared by code, whether they end a stream or the connection: where RFC 9113
lets a receiver choose (a flow-control violation on one stream) or asks for a stream error
(a WINDOW_UPDATE of 0 on a stream), h2 ends the connection and this transport the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from google.protobuf.struct_pb2 import ListValue
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from extproc.transport import Call, Method
from extproc.transport.budget import Budget
from extproc.transport.connection import (
    CONNECTION_WINDOW,
    MAX_FRAME,
    MAX_HEADER_LIST,
    STREAM_WINDOW,
    Connection,
)
from extproc.transport.frames import DEFAULT_WINDOW, ErrorCode
from tests.unit.test_transport import CollectingTransport, frames_in

SINK = "/test.Sink/Call"
MAX_STREAMS = 100
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MESSAGE = ListValue()
MESSAGE.extend(["x" * 90])
FRAMED = b"\x00" + len(MESSAGE.SerializeToString()).to_bytes(4, "big")
FRAMED += MESSAGE.SerializeToString()
"""One small gRPC message (100 bytes with its prefix)."""
PEER_ERRORS = {
    ErrorCode.PROTOCOL_ERROR,
    ErrorCode.FLOW_CONTROL_ERROR,
    ErrorCode.STREAM_CLOSED,
    ErrorCode.FRAME_SIZE_ERROR,
    ErrorCode.COMPRESSION_ERROR,
}
"""Codes that say the peer broke the protocol (not a cancellation or a refusal)."""


def first_error(written: bytes) -> ErrorCode | None:
    """The first peer error a GOAWAY or RST_STREAM in `written` reports."""
    for frame in frames_in(written):
        if isinstance(frame, GoAwayFrame | RstStreamFrame) and frame.error_code in PEER_ERRORS:
            return ErrorCode(frame.error_code)
    return None


async def _sink(call: Call[ListValue]) -> None:
    async for _ in call:
        pass


class Ours:
    """The transport, fed in a loop of its own; its handler consumes every message."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._tasks: list[asyncio.Task[None]] = []
        self.connection = Connection(
            {SINK: Method(_sink, ListValue)},
            lambda task, call: self._tasks.append(task),
            max_message=1 << 20,
            max_streams=MAX_STREAMS,
            budget=Budget(4 << 20),
        )
        self.transport = CollectingTransport()
        self._loop.run_until_complete(self._made())

    async def _made(self) -> None:
        self.connection.connection_made(self.transport)

    def feed(self, data: bytes) -> ErrorCode | None:
        """The error code the frames ended the connection or a stream with, if any."""
        before = len(self.transport.written)
        self._loop.run_until_complete(self._feed(data))
        return first_error(bytes(self.transport.written[before:]))

    async def _feed(self, data: bytes) -> None:
        self.connection.data_received(data)
        for _ in range(5):  # let the handlers take what came
            await asyncio.sleep(0)

    def close(self) -> None:
        self._loop.run_until_complete(self._cancel())
        self._loop.close()

    async def _cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Oracle:
    """h2's server side with the same settings; every byte of data is acknowledged at once
    (as the sink consumes it)."""

    def __init__(self) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.connection = h2.connection.H2Connection(config)
        self.connection.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_FRAME,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            },
        )
        self.connection.initiate_connection()
        self.connection.increment_flow_control_window(CONNECTION_WINDOW - DEFAULT_WINDOW)

    def feed(self, data: bytes) -> ErrorCode | None:
        self.connection.clear_outbound_data_buffer()
        try:
            events = self.connection.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            return ErrorCode(error.error_code)
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                self.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
        return first_error(self.connection.data_to_send())  # stream errors h2 answered


def request_block(encoder: Encoder) -> bytes:
    return encoder.encode(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", SINK),
            (":authority", "oracle"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
    )


MALFORMED_KINDS = (
    "ping-7",
    "ping-9",
    "priority-4",
    "window-too-large",
    "frame-size-too-large",
    "enable-push-2",
    "connection-window-overflow",
    "connection-window-0",
    "continuation-alone",
    "even-stream",
    "data-on-idle-stream",
    "data-on-stream-0",
    "oversized-frame",
    "window-update-on-idle-stream",
)
"""Ways to break the protocol (see MALFORMED)."""


class SameAsH2(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ours = Ours()
        self._connect()

    def _connect(self) -> None:
        self.oracle = Oracle()
        self.encoder = Encoder()
        self.next_stream = 1
        self.open: dict[int, int] = {}
        """Streams the client opened and has not ended, with the bytes sent on each."""
        self.ended: list[int] = []
        self.outcome: tuple[ErrorCode | None, ErrorCode | None] = (None, None)
        self.send(PREFACE + SettingsFrame(0).serialize() + SettingsFrame(flags=["ACK"]).serialize())

    @precondition(lambda self: not self.alive)
    @rule()
    def connect_again(self) -> None:
        """Both ended the connection alike: go on with new ones."""
        self.ours.close()
        self.ours = Ours()
        self._connect()

    def teardown(self) -> None:
        self.ours.close()

    def send(self, *frames: Frame | bytes) -> None:
        data = b"".join(f if isinstance(f, bytes) else f.serialize() for f in frames)
        self.outcome = (self.ours.feed(data), self.oracle.feed(data))

    @property
    def alive(self) -> bool:
        return self.outcome == (None, None)

    @invariant()
    def both_agree(self) -> None:
        assert self.outcome[0] == self.outcome[1], self.outcome

    # Streams.

    @precondition(lambda self: self.alive and len(self.open) < MAX_STREAMS - 1)
    @rule(end=st.booleans())
    def open_a_stream(self, end: bool) -> None:
        stream_id = self.next_stream
        self.next_stream += 2
        flags = ["END_HEADERS", "END_STREAM"] if end else ["END_HEADERS"]
        self.send(HeadersFrame(stream_id, data=request_block(self.encoder), flags=flags))
        if end:
            self.ended.append(stream_id)
        else:
            self.open[stream_id] = 0

    @precondition(lambda self: self.alive and self.open)
    @rule(data=st.data(), messages=st.integers(0, 40), end=st.booleans())
    def send_messages(self, data: st.DataObject, messages: int, end: bool) -> None:
        stream_id = data.draw(st.sampled_from(sorted(self.open)))
        if self.open[stream_id] + messages * len(FRAMED) > STREAM_WINDOW // 2:
            messages = 0  # well within the window, however the credits are timed
        self.open[stream_id] += messages * len(FRAMED)
        self.send(DataFrame(stream_id, data=FRAMED * messages, flags=["END_STREAM"] if end else []))
        if end:
            del self.open[stream_id]
            self.ended.append(stream_id)

    @precondition(lambda self: self.alive and self.open)
    @rule(data=st.data())
    def send_beyond_the_window(self, data: st.DataObject) -> None:
        stream_id = data.draw(st.sampled_from(sorted(self.open)))
        chunk = FRAMED * (MAX_FRAME // len(FRAMED))
        frames = [DataFrame(stream_id, data=chunk) for _ in range(STREAM_WINDOW // len(chunk) + 2)]
        self.send(*frames)

    @precondition(lambda self: self.alive and self.ended)
    @rule(data=st.data())
    def send_on_an_ended_stream(self, data: st.DataObject) -> None:
        stream_id = data.draw(st.sampled_from(self.ended))
        self.send(DataFrame(stream_id, data=FRAMED))

    @precondition(lambda self: self.alive and self.open)
    @rule(data=st.data(), code=st.integers(0, 13))
    def reset_a_stream(self, data: st.DataObject, code: int) -> None:
        stream_id = data.draw(st.sampled_from(sorted(self.open)))
        del self.open[stream_id]
        self.send(RstStreamFrame(stream_id, error_code=code))

    @precondition(lambda self: self.alive and self.open)
    @rule(data=st.data())
    def end_with_trailers(self, data: st.DataObject) -> None:
        stream_id = data.draw(st.sampled_from(sorted(self.open)))
        del self.open[stream_id]
        self.ended.append(stream_id)
        block = self.encoder.encode([("grpc-trailer", "1")])
        self.send(HeadersFrame(stream_id, data=block, flags=["END_HEADERS", "END_STREAM"]))

    # Connection-level frames, good and bad.

    @precondition(lambda self: self.alive)
    @rule(
        stream=st.sampled_from(["connection", "open"]),
        increment=st.sampled_from([1, 1000, 0]),
        data=st.data(),
    )
    def window_update(self, stream: str, increment: int, data: st.DataObject) -> None:
        if stream == "open" and not self.open:
            stream = "connection"
        if stream == "connection" and not increment:
            increment = 1  # a connection window of 0 is among the malformed frames
        stream_id = 0 if stream == "connection" else data.draw(st.sampled_from(sorted(self.open)))
        self.send(WindowUpdateFrame(stream_id, window_increment=increment))

    @precondition(lambda self: self.alive)
    @rule(ack=st.booleans())
    def ping(self, ack: bool) -> None:
        self.send(PingFrame(0, opaque_data=b"p" * 8, flags=["ACK"] if ack else []))

    @precondition(lambda self: self.alive)
    @rule(
        setting=st.sampled_from(
            [
                (SettingsFrame.INITIAL_WINDOW_SIZE, 1 << 20),
                (SettingsFrame.INITIAL_WINDOW_SIZE, 0),
                (SettingsFrame.MAX_FRAME_SIZE, 1 << 15),
                (SettingsFrame.ENABLE_PUSH, 0),
                (SettingsFrame.HEADER_TABLE_SIZE, 0),
                (0x99, 7),
            ]
        )
    )
    def settings(self, setting: tuple[int, int]) -> None:
        self.send(SettingsFrame(0, settings=dict([setting])))

    @precondition(lambda self: self.alive)
    @rule()
    def priority(self) -> None:
        self.send(PriorityFrame(self.next_stream + 20, depends_on=1, stream_weight=3))

    @precondition(lambda self: self.alive)
    @rule()
    def unknown_frame_type(self) -> None:
        body = b"ignored"
        self.send(len(body).to_bytes(3, "big") + b"\xbe\x00\x00\x00\x00\x00" + body)

    @precondition(lambda self: self.alive)
    @rule(kind=st.sampled_from(MALFORMED_KINDS))
    def malformed(self, kind: str) -> None:
        self.send(MALFORMED[kind](self))


def _ping_of(length: int) -> bytes:
    return _resized(bytearray(PingFrame(0, opaque_data=b"p" * 8).serialize()), length)


def _data_on_stream_zero() -> bytes:
    raw = bytearray(DataFrame(1, data=FRAMED).serialize())
    raw[5:9] = b"\x00\x00\x00\x00"
    return bytes(raw)


MALFORMED: dict[str, Callable[[SameAsH2], bytes]] = {
    "ping-7": lambda machine: _ping_of(7),
    "ping-9": lambda machine: _ping_of(9),
    "priority-4": lambda machine: _resized(
        bytearray(PriorityFrame(machine.next_stream + 20, depends_on=1).serialize()), 4
    ),
    "window-too-large": lambda machine: SettingsFrame(
        0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 2**31}
    ).serialize(),
    "frame-size-too-large": lambda machine: SettingsFrame(
        0, settings={SettingsFrame.MAX_FRAME_SIZE: 1 << 24}
    ).serialize(),
    "enable-push-2": lambda machine: SettingsFrame(
        0, settings={SettingsFrame.ENABLE_PUSH: 2}
    ).serialize(),
    "connection-window-overflow": lambda machine: WindowUpdateFrame(
        0, window_increment=2**31 - 1
    ).serialize(),
    "connection-window-0": lambda machine: WindowUpdateFrame(0, window_increment=0).serialize(),
    "continuation-alone": lambda machine: ContinuationFrame(
        machine.next_stream, data=b"", flags=["END_HEADERS"]
    ).serialize(),
    "even-stream": lambda machine: HeadersFrame(
        2, data=request_block(machine.encoder), flags=["END_HEADERS"]
    ).serialize(),
    "data-on-idle-stream": lambda machine: DataFrame(
        machine.next_stream + 10, data=FRAMED
    ).serialize(),
    "data-on-stream-0": lambda machine: _data_on_stream_zero(),
    "oversized-frame": lambda machine: _oversized(),
    "window-update-on-idle-stream": lambda machine: WindowUpdateFrame(
        machine.next_stream + 40, window_increment=5
    ).serialize(),
}
"""Frames that break the protocol, by what is wrong with them (one rule picks among them, so
that connections live long enough for the other rules)."""
assert set(MALFORMED) == set(MALFORMED_KINDS)


def _resized(raw: bytearray, length: int) -> bytes:
    """A serialised frame with its payload cut or padded to `length` bytes."""
    payload = bytes(raw[9:])[:length].ljust(length, b"\x00")
    raw[0:3] = length.to_bytes(3, "big")
    return bytes(raw[:9]) + payload


def _oversized() -> bytes:
    size = MAX_FRAME + 1
    return size.to_bytes(3, "big") + bytes((0xBE, 0)) + b"\x00\x00\x00\x00" + b"\x00" * size


SameAsH2.TestCase.settings = settings(
    max_examples=500,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_transport_agrees_with_h2 = SameAsH2.TestCase
