"""The processor's gRPC transport against other implementations: grpcio's C core as the
client for calls, flow control and cancellation; hand-made frames (hyperframe, hpack) for the
protocol's edges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf.struct_pb2 import ListValue
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from extproc.transport import Call, GrpcError, Method, Server, Status
from extproc.transport.budget import Budget
from extproc.transport.connection import Connection

ECHO = "/test.Echo/Stream"
UNARY = "/test.Echo/Unary"
FAIL = "/test.Echo/Fail"
BLOCK = "/test.Echo/Block"
GATED = "/test.Echo/Gated"
WINDING_UP = "/test.Echo/WindingUp"
BIG = 20 * 1024 * 1024
LIMITS = [(f"grpc.max_{way}_message_length", 64 * 1024 * 1024) for way in ("send", "receive")]


@dataclass
class Echo:
    """Answers every message with itself; notes what the handlers saw."""

    metadata: list[tuple[str, str]] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    running: int = 0
    peak: int = 0

    async def stream(self, call: Call[ListValue]) -> None:
        async for message in call:
            await call.send(message)
        self.ended.set()

    async def unary(self, call: Call[ListValue]) -> None:
        self.metadata = call.metadata
        message = await call.recv()
        assert message is not None
        await call.send(message)

    async def fail(self, call: Call[ListValue]) -> None:
        message = await call.recv()
        assert message is not None
        if message.values[0].string_value == "refuse":
            raise GrpcError(Status.INVALID_ARGUMENT, "refusé: 100 % wrong\nsecond line")
        raise RuntimeError("a bug")

    async def block(self, call: Call[ListValue]) -> None:
        await call.recv()
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def winding_up(self, call: Call[ListValue]) -> None:
        """Winds up (as the processor settles a call) until the gate opens."""
        await call.recv()
        call.finishing = True
        self.started.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        self.finished.set()

    async def gated(self, call: Call[ListValue]) -> None:
        """Holds every call until the gate opens, counting how many are open at once."""
        self.running += 1
        self.peak = max(self.peak, self.running)
        message = await call.recv()
        assert message is not None
        await self.gate.wait()
        self.running -= 1
        await call.send(message)

    def methods(self) -> dict[str, Method[ListValue]]:
        return {
            GATED: Method(self.gated, ListValue),
            ECHO: Method(self.stream, ListValue),
            UNARY: Method(self.unary, ListValue),
            FAIL: Method(self.fail, ListValue),
            BLOCK: Method(self.block, ListValue),
            WINDING_UP: Method(self.winding_up, ListValue),
        }


@dataclass
class Running:
    server: Server
    echo: Echo
    socket: str


@asynccontextmanager
async def serving(socket: str, **limits: int) -> AsyncIterator[Running]:
    echo = Echo()
    server = Server(echo.methods(), receive_budget=4 * limits["max_message"], **limits)
    await server.start_unix(socket)
    yield Running(server, echo, socket)
    server.close()
    await server.wait_closed()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serving(str(tmp_path / "t.sock"), max_message=64 * 1024 * 1024) as server:
        yield server


@pytest.fixture
async def narrow(tmp_path: Path) -> AsyncIterator[Running]:
    """A server taking two calls at once per connection."""
    async with serving(str(tmp_path / "n.sock"), max_message=1024, max_streams=2) as server:
        yield server


@pytest.fixture
async def channel(running: Running) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"unix:{running.socket}", options=LIMITS) as channel:
        yield channel


def words(*values: str) -> ListValue:
    message = ListValue()
    message.extend(values)
    return message


def unary(channel: grpc.aio.Channel, path: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        path,
        request_serializer=ListValue.SerializeToString,
        response_deserializer=ListValue.FromString,
    )


def stream(channel: grpc.aio.Channel) -> grpc.aio.StreamStreamMultiCallable:
    return channel.stream_stream(
        ECHO,
        request_serializer=ListValue.SerializeToString,
        response_deserializer=ListValue.FromString,
    )


async def test_a_unary_call_is_answered_with_the_clients_metadata_seen(
    running: Running, channel: grpc.aio.Channel
) -> None:
    answer = await unary(channel, UNARY)(words("hi"), metadata=(("traceparent", "00-ab-cd-01"),))

    assert list(answer) == ["hi"]
    assert ("traceparent", "00-ab-cd-01") in running.echo.metadata
    assert all(not name.startswith(":") for name, _ in running.echo.metadata)


async def test_a_stream_carries_many_messages_in_order(channel: grpc.aio.Channel) -> None:
    sent = [words(str(i)) for i in range(300)]

    answers = [message async for message in stream(channel)(iter(sent))]

    assert [list(message) for message in answers] == [[str(i)] for i in range(300)]


async def test_large_messages_flow_both_ways_within_the_windows(channel: grpc.aio.Channel) -> None:
    # 20 MiB each way: more than the stream window the server grants (16 MiB, so it must
    # acknowledge as it reads) and than the client's windows (4 MiB with grpcio).
    big = words("x" * BIG, "y")

    async def echoed() -> list[ListValue]:
        return [message async for message in stream(channel)(iter([big, words("after")]))]

    answers = await asyncio.wait_for(echoed(), 30)

    assert [len(message.values[0].string_value) for message in answers] == [BIG, 5]
    assert answers[0] == big


async def test_a_handlers_refusal_reaches_the_client_with_its_status_and_words(
    channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await unary(channel, FAIL)(words("refuse"))

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "refusé: 100 % wrong\nsecond line"


async def test_a_failing_handler_is_an_internal_error_and_is_logged(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await unary(channel, FAIL)(words("crash"))

    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert failed.value.details() == "internal error"
    assert "a bug" in caplog.text
    assert await unary(channel, UNARY)(words("still serving")) == words("still serving")


async def test_an_unknown_method_is_unimplemented(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await unary(channel, "/test.Echo/Missing")(words("x"))

    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_cancelled_stream_ends_the_handlers_loop(
    running: Running, channel: grpc.aio.Channel
) -> None:
    call = stream(channel)()
    await call.write(words("one"))
    assert await call.read() == words("one")

    call.cancel()

    await asyncio.wait_for(running.echo.ended.wait(), 5)
    assert await unary(channel, UNARY)(words("next")) == words("next")


async def started(
    running: Running, channel: grpc.aio.Channel, path: str
) -> grpc.aio.UnaryUnaryCall[ListValue, ListValue]:
    """A unary call to `path`, once its handler runs."""
    call = unary(channel, path)(words("wait"))
    await asyncio.wait_for(running.echo.started.wait(), 5)
    return call


async def test_closing_the_server_cancels_running_calls(
    running: Running, channel: grpc.aio.Channel
) -> None:
    call = await started(running, channel, BLOCK)

    running.server.close()
    await asyncio.wait_for(running.server.wait_closed(), 5)

    assert running.echo.cancelled.is_set()
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await call
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_closing_the_server_waits_for_calls_winding_up(
    running: Running, channel: grpc.aio.Channel
) -> None:
    call = await started(running, channel, WINDING_UP)

    running.server.close()
    closed = asyncio.ensure_future(running.server.wait_closed())
    await asyncio.sleep(0)  # one turn: close() has had its say
    assert not closed.done() and not running.echo.cancelled.is_set()
    running.echo.gate.set()
    await asyncio.wait_for(closed, 5)

    assert running.echo.finished.is_set() and not running.echo.cancelled.is_set()
    with pytest.raises(grpc.aio.AioRpcError):
        await call


async def test_a_client_keeps_to_the_servers_stream_limit_and_every_call_completes(
    narrow: Running,
) -> None:
    async with grpc.aio.insecure_channel(f"unix:{narrow.socket}") as narrow_channel:
        gated = unary(narrow_channel, GATED)
        calls = [asyncio.ensure_future(gated(words(str(i)))) for i in range(5)]
        await asyncio.wait_for(_until(lambda: narrow.echo.running == 2), 5)

        narrow.echo.gate.set()
        answers = await asyncio.wait_for(asyncio.gather(*calls), 5)

    assert [list(answer) for answer in answers] == [[str(i)] for i in range(5)]
    assert narrow.echo.peak == 2


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


# The protocol's edges, in hand-made frames.

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REQUEST_HEADERS = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", UNARY),
    (":authority", "test"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
]


def grpc_message(message: ListValue) -> bytes:
    data = message.SerializeToString()
    return b"\x00" + len(data).to_bytes(4, "big") + data


class RawClient:
    """Writes frames as given and reads the server's frames back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = Decoder()

    def send(self, *frames: Frame | bytes) -> None:
        for item in frames:
            self.writer.write(item if isinstance(item, bytes) else item.serialize())

    async def frame(self) -> Frame | None:
        try:
            header = await asyncio.wait_for(self.reader.readexactly(9), 5)
        except asyncio.IncompleteReadError:
            return None
        parsed, length = Frame.parse_frame_header(memoryview(header))
        parsed.parse_body(memoryview(await self.reader.readexactly(length)))
        return parsed

    async def until(self, wanted: type[Frame], *, ending: bool = False) -> list[Frame]:
        """Frames up to and including the first of type `wanted` (with END_STREAM when
        `ending`), or up to the close."""
        seen: list[Frame] = []
        while (received := await self.frame()) is not None:
            seen.append(received)
            if isinstance(received, wanted) and (not ending or "END_STREAM" in received.flags):
                break
        return seen


@pytest.fixture
async def raw(running: Running) -> AsyncIterator[RawClient]:
    reader, writer = await asyncio.open_unix_connection(running.socket)
    yield RawClient(reader, writer)
    writer.close()


async def test_a_ping_is_acknowledged_with_its_data(raw: RawClient) -> None:
    raw.send(PREFACE, SettingsFrame(0), PingFrame(0, opaque_data=b"8 bytes!"))

    frames = await raw.until(PingFrame)

    assert isinstance(frames[-1], PingFrame)
    assert frames[-1].flags == {"ACK"} and frames[-1].opaque_data == b"8 bytes!"


async def test_split_header_blocks_and_padded_data_are_read(raw: RawClient) -> None:
    block = Encoder().encode(REQUEST_HEADERS)
    headers = HeadersFrame(1, data=block[:7])
    continuation = ContinuationFrame(1, data=block[7:], flags=["END_HEADERS"])
    data = DataFrame(1, data=grpc_message(words("padded")), flags=["PADDED", "END_STREAM"])
    data.pad_length = 9

    raw.send(PREFACE, SettingsFrame(0), headers, continuation, data)
    frames = [f for f in await raw.until(HeadersFrame, ending=True) if f.stream_id == 1]

    response_headers, body, trailers = frames[:3]
    assert isinstance(response_headers, HeadersFrame) and isinstance(body, DataFrame)
    assert ListValue.FromString(body.data[5:]) == words("padded")
    assert isinstance(trailers, HeadersFrame) and "END_STREAM" in trailers.flags
    fields = dict(raw.decoder.decode(response_headers.data) + raw.decoder.decode(trailers.data))
    assert fields[":status"] == "200" and fields["grpc-status"] == "0"


async def test_answers_wait_for_the_clients_flow_control_windows(raw: RawClient) -> None:
    block = Encoder().encode(REQUEST_HEADERS)
    request = grpc_message(words("x" * 5000))
    raw.send(
        PREFACE,
        SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 1000}),
        HeadersFrame(1, data=block, flags=["END_HEADERS"]),
        DataFrame(1, data=request, flags=["END_STREAM"]),
        PingFrame(0, opaque_data=b"in order"),
    )
    await raw.until(PingFrame)  # the request has been read
    raw.send(PingFrame(0, opaque_data=b"answered"))
    before_update = await raw.until(PingFrame)

    raw.send(WindowUpdateFrame(1, window_increment=10_000))
    after_update = await raw.until(HeadersFrame, ending=True)

    def sent(frames: list[Frame]) -> bytes:
        return b"".join(f.data for f in frames if isinstance(f, DataFrame))

    assert len(sent(before_update)) == 1000, "no more than the stream's window"
    assert sent(before_update) + sent(after_update) == request


async def test_a_stream_over_the_limit_is_refused(narrow: Running) -> None:
    reader, writer = await asyncio.open_unix_connection(narrow.socket)
    raw = RawClient(reader, writer)
    block = Encoder().encode([*REQUEST_HEADERS[:2], (":path", GATED), *REQUEST_HEADERS[3:]])
    raw.send(PREFACE, SettingsFrame(0))
    for stream_id in (1, 3, 5):  # without waiting for the server's SETTINGS
        raw.send(HeadersFrame(stream_id, data=block, flags=["END_HEADERS"]))

    frames = await raw.until(RstStreamFrame)
    writer.close()

    assert (frames[-1].stream_id, frames[-1].error_code) == (5, 7)  # REFUSED_STREAM


async def test_a_bad_preface_is_refused_with_goaway(raw: RawClient) -> None:
    raw.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")

    frames = await raw.until(GoAwayFrame)

    assert isinstance(frames[-1], GoAwayFrame) and frames[-1].error_code == 1  # PROTOCOL_ERROR
    assert await raw.frame() is None, "the connection is closed"


async def test_data_on_a_stream_never_opened_ends_the_connection(raw: RawClient) -> None:
    raw.send(PREFACE, SettingsFrame(0), DataFrame(5, data=b"\x00\x00\x00\x00\x00"))

    frames = await raw.until(GoAwayFrame)

    assert isinstance(frames[-1], GoAwayFrame) and frames[-1].error_code == 1
    assert await raw.frame() is None


class CollectingTransport(asyncio.Transport):
    """What the server writes, kept in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass


def frames_in(data: bytes) -> list[Frame]:
    found, position = [], 0
    while position < len(data):
        parsed, length = Frame.parse_frame_header(memoryview(data[position : position + 9]))
        parsed.parse_body(memoryview(data[position + 9 : position + 9 + length]))
        found.append(parsed)
        position += 9 + length
    return found


@pytest.mark.parametrize("piece", [1, 2, 7, 64, 100_000])
async def test_frames_split_anywhere_across_reads_are_read_whole(piece: int) -> None:
    echo = Echo()
    connection = Connection(
        echo.methods(),
        lambda task, call: None,
        max_message=1 << 20,
        max_streams=4,
        budget=Budget(1 << 22),
    )
    transport = CollectingTransport()
    connection.connection_made(transport)
    message = grpc_message(words("x" * 3000, "split"))
    block = Encoder().encode(REQUEST_HEADERS)
    sent = PREFACE + b"".join(
        item.serialize()
        for item in (
            SettingsFrame(0),
            HeadersFrame(1, data=block, flags=["END_HEADERS"]),
            DataFrame(1, data=message[:1000]),
            DataFrame(1, data=message[1000:], flags=["END_STREAM"]),
        )
    )

    for start in range(0, len(sent), piece):
        connection.data_received(sent[start : start + piece])
    await asyncio.wait_for(_until(lambda: b"grpc-status" in transport.written), 5)

    data = [f for f in frames_in(bytes(transport.written)) if isinstance(f, DataFrame)]
    assert ListValue.FromString(b"".join(f.data for f in data)[5:]) == words("x" * 3000, "split")


async def test_a_reset_wakes_a_sender_blocked_on_the_window_and_frees_its_stream(
    narrow: Running,
) -> None:
    reader, writer = await asyncio.open_unix_connection(narrow.socket)
    raw = RawClient(reader, writer)
    block = Encoder().encode([*REQUEST_HEADERS[:2], (":path", ECHO), *REQUEST_HEADERS[3:]])
    raw.send(
        PREFACE,
        SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0}),
        HeadersFrame(1, data=block, flags=["END_HEADERS"]),
        DataFrame(1, data=grpc_message(words("blocked"))),
    )
    await raw.until(HeadersFrame)  # the answer started; its DATA waits for a window

    raw.send(RstStreamFrame(1, error_code=8))  # CANCEL
    await asyncio.wait_for(narrow.echo.ended.wait(), 5)

    # Both of the connection's two streams are free again.
    raw.send(SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535}))
    for stream_id in (3, 5):
        raw.send(
            HeadersFrame(stream_id, data=block, flags=["END_HEADERS"]),
            DataFrame(stream_id, data=grpc_message(words("after")), flags=["END_STREAM"]),
        )
    frames = [await raw.until(HeadersFrame, ending=True) for _ in (3, 5)]
    writer.close()
    assert not any(isinstance(f, RstStreamFrame) for seen in frames for f in seen)


async def test_a_reset_call_counts_against_the_cap_until_its_handler_returns(
    narrow: Running,
) -> None:
    reader, writer = await asyncio.open_unix_connection(narrow.socket)
    raw = RawClient(reader, writer)
    blocking = Encoder().encode([*REQUEST_HEADERS[:2], (":path", BLOCK), *REQUEST_HEADERS[3:]])
    raw.send(
        PREFACE,
        SettingsFrame(0),
        HeadersFrame(1, data=blocking, flags=["END_HEADERS"]),
        DataFrame(1, data=grpc_message(words("hold")), flags=["END_STREAM"]),
    )
    await asyncio.wait_for(narrow.echo.started.wait(), 5)
    raw.send(RstStreamFrame(1, error_code=8))  # its handler ignores the reset and runs on
    for stream_id in (3, 5):
        raw.send(HeadersFrame(stream_id, data=blocking, flags=["END_HEADERS"]))

    frames = await raw.until(RstStreamFrame)
    writer.close()

    assert (frames[-1].stream_id, frames[-1].error_code) == (5, 7)  # REFUSED_STREAM
