"""The processor's socket in the hands of a misbehaving peer, against a real `extproc serve`:
peers that never read, that send beyond their window, oversized header blocks, connection
storms, malformed messages. Each time the processor's memory stays bounded, its event loop
keeps answering health checks, and the peer learns what it did wrong."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from extproc.envoyapi.messages import HttpHeaders, ProcessingRequest
from tests.harness import Process, extproc, free_port, sha256, wait_until, write_config

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROCESS = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR = 11, 3, 6
RSS_GROWTH_LIMIT = 64 * 1024 * 1024
"""What one misbehaving peer may cost the processor at most (bytes of resident memory)."""


class Processor:
    def __init__(self, process: Process, port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def rss(self) -> int:
        for line in Path(f"/proc/{self.process.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def health_latency(self) -> float:
        """Seconds a health check takes on a connection of its own."""
        started = time.monotonic()
        with grpc.insecure_channel(self.address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        return time.monotonic() - started

    def connect(self, *, receive_buffer: int | None = None) -> socket.socket:
        sock = socket.socket()
        if receive_buffer is not None:  # before connecting, so the kernel keeps to it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", self.port))
        return sock


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processor]:
    directory = tmp_path_factory.mktemp("transport-faults")
    config = write_config(
        directory,
        {
            "providers": {
                "p": {
                    "kind": "openai",
                    "base_url": "http://127.0.0.1:9",
                    "api_key": "${env:TRANSPORT_FAULTS_KEY}",
                }
            },
            "models": {"m": {"provider": "p", "model": "up"}},
            "keys": [{"id": "k", "sha256": sha256("sk-gw-transport"), "models": ["m"]}],
        },
    )
    port = free_port()
    log = directory / "processor.log"
    argv = extproc("serve", "--config", str(config), "--address", f"127.0.0.1:{port}")
    process = Process(argv, stderr_path=log, env={"TRANSPORT_FAULTS_KEY": "sk-unused"})
    try:
        running = Processor(process, port, log)
        wait_until(lambda: _answers(running), "the processor did not start")
        yield running
    finally:
        process.stop()


def _answers(processor: Processor) -> bool:
    try:
        return processor.health_latency() >= 0
    except grpc.RpcError:
        return False


def handshake() -> bytes:
    return PREFACE + SettingsFrame(0).serialize()


def request_headers(stream_id: int, path: str = PROCESS, *, end: bool = False) -> bytes:
    flags = ["END_HEADERS", "END_STREAM"] if end else ["END_HEADERS"]
    return HeadersFrame(stream_id, data=_header_block(path), flags=flags).serialize()


@functools.cache
def _header_block(path: str) -> bytes:
    """A call's header block, as a new connection's first one encodes it."""
    return Encoder().encode(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "processor"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
    )


def frames_until_closed(sock: socket.socket, *, timeout: float = 10) -> list[Frame]:
    """Every frame the processor sends until it closes (or `timeout` passes)."""
    sock.settimeout(timeout)
    data = bytearray()
    with contextlib.suppress(TimeoutError, ConnectionError):
        while chunk := sock.recv(1 << 16):
            data += chunk
    return whole_frames(data)


def whole_frames(data: bytes | bytearray) -> list[Frame]:
    """The frames `data` holds whole (a last one cut short is left out)."""
    found, position = [], 0
    while len(data) - position >= 9:
        parsed, length = Frame.parse_frame_header(memoryview(data[position : position + 9]))
        if len(data) - position - 9 < length:
            break
        parsed.parse_body(memoryview(data[position + 9 : position + 9 + length]))
        found.append(parsed)
        position += 9 + length
    return found


def flood_without_reading(sock: socket.socket, pattern: bytes, *, limit: int) -> int:
    """Send `pattern` over and over without reading anything, until the processor stops
    taking it (the send blocks), closes, or `limit` bytes went; returns the bytes sent."""
    sock.settimeout(2)
    chunk = pattern * max(1, (1 << 16) // len(pattern))
    sent = 0
    with contextlib.suppress(TimeoutError, ConnectionError):
        while sent < limit:
            sent += sock.send(chunk)
    return sent


@pytest.mark.parametrize(
    "pattern",
    [
        PingFrame(0, opaque_data=b"12345678").serialize(),
        SettingsFrame(0).serialize(),
        # A stream opened on an unknown method, each answered at once: the answers pile up.
        b"unknown-method",
    ],
    ids=["ping", "settings", "unknown-method"],
)
def test_a_peer_that_never_reads_is_not_queued_for(processor: Processor, pattern: bytes) -> None:
    before = processor.rss()
    with processor.connect(receive_buffer=64 * 1024) as sock:
        sock.sendall(handshake())
        if pattern == b"unknown-method":
            headers = b"".join(request_headers(2 * n + 1, "/no.Such/Method") for n in range(2000))
            pattern = headers
        sent = flood_without_reading(sock, pattern, limit=512 * 1024 * 1024)
        # The processor stopped reading (or told the peer to calm down) long before.
        assert sent < 256 * 1024 * 1024, sent
        assert processor.health_latency() < 1.0
        assert processor.rss() - before < RSS_GROWTH_LIMIT


def test_data_beyond_the_window_is_a_flow_control_error(processor: Processor) -> None:
    # Request headers without a path: answered with a local 400, then passed through.
    message = ProcessingRequest(request_headers=HttpHeaders()).SerializeToString()
    framed = b"\x00" + len(message).to_bytes(4, "big") + message
    data = DataFrame(1, data=framed * 2000).serialize()  # 14 KB of messages a frame
    before = processor.rss()
    with processor.connect() as sock:
        sock.sendall(handshake() + request_headers(1))
        reader = _Reader(sock)
        with contextlib.suppress(ConnectionError):
            for _ in range(40 * 1024 * 1024 // len(data)):  # 40 MiB, windows ignored
                sock.sendall(data)
        frames = reader.frames()
    refusals = [
        f
        for f in frames
        if isinstance(f, RstStreamFrame | GoAwayFrame) and f.error_code == FLOW_CONTROL_ERROR
    ]
    assert refusals, [type(f).__name__ for f in frames][-5:]
    assert processor.rss() - before < RSS_GROWTH_LIMIT


class _Reader(threading.Thread):
    """Reads everything the processor sends (so that it keeps reading), for later."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self._sock = sock
        self._data = bytearray()
        self.start()

    def run(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := self._sock.recv(1 << 16):
                self._data += chunk

    def frames(self) -> list[Frame]:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
        self.join(timeout=10)
        return whole_frames(self._data)


@pytest.mark.parametrize("split", [False, True], ids=["one-frame", "continuations"])
def test_an_oversized_header_block_is_refused_before_it_is_decoded(
    processor: Processor, split: bool
) -> None:
    block = Encoder().encode([("x-big", "v" * (1 << 20))], huffman=False)
    with processor.connect() as sock:
        sock.sendall(handshake())
        started = time.monotonic()
        if split:
            frames = [HeadersFrame(1, data=block[:16384])]
            for start in range(16384, len(block), 16384):
                frames.append(ContinuationFrame(1, data=block[start : start + 16384]))
            frames[-1].flags.add("END_HEADERS")
            with contextlib.suppress(ConnectionError):
                for item in frames:
                    sock.sendall(item.serialize())
        else:
            with contextlib.suppress(ConnectionError):
                sock.sendall(HeadersFrame(1, data=block, flags=["END_HEADERS"]).serialize())
        answer = frames_until_closed(sock)
        elapsed = time.monotonic() - started
    goaway = [f for f in answer if isinstance(f, GoAwayFrame)]
    assert goaway and goaway[0].error_code == (ENHANCE_YOUR_CALM if split else FRAME_SIZE_ERROR)
    assert elapsed < 0.5, "refused unread (decoding it took 1.7 s of the event loop)"
    assert processor.health_latency() < 1.0


def test_a_storm_of_idle_connections_does_not_lock_out_a_real_client(
    processor: Processor,
) -> None:
    before = processor.rss()
    idle = []
    try:
        for number in range(1200):  # more than the processor keeps
            sock = socket.create_connection(("127.0.0.1", processor.port), timeout=10)
            if number % 2:
                sock.sendall(handshake())  # the others never say their preface
            idle.append(sock)
        # The oldest idle ones made room: a real client still gets through.
        assert processor.health_latency() < 2.0
        closed = sum(1 for sock in idle if _closed(sock))
        assert closed >= 1200 - 1024
    finally:
        for sock in idle:
            sock.close()
    assert processor.rss() - before < RSS_GROWTH_LIMIT


def _closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(1 << 16):
                return True
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_a_malformed_message_is_a_client_error_logged_once(processor: Processor) -> None:
    lines_before = processor.log.read_text().count("\n")
    with grpc.insecure_channel(processor.address) as channel:
        process = channel.stream_stream(
            PROCESS, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
        )
        with pytest.raises(grpc.RpcError) as refused:
            list(process(iter([b"\xff\xff\xff\xff"])))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    written = wait_until(
        lambda: processor.log.read_text().splitlines()[lines_before:],
        "nothing was logged",
    )
    assert len(written) == 1 and "WARNING" in written[0], written
