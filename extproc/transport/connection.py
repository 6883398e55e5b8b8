"""One HTTP/2 connection of the gRPC server: frames in, calls dispatched, flow control.

Only what a gRPC server needs of RFC 9113: no push, no priorities (read and ignored), no
request bodies outside gRPC framing. Frames are read straight from each socket read; a
request's common path (HEADERS, DATA in; HEADERS, DATA out) costs a few dict lookups and one
HPACK decode, which is the point of this module.

A peer gets no more than it is owed: reading stops while the peer does not read what it is
sent (and a peer that makes the server queue more than `OUTBOUND_LIMIT` anyway is told to
calm down), a stream's window is credited as its handler consumes messages (see `call.py`),
header blocks are bounded before they are decoded, and a connection without calls is
closed after `IDLE_TIMEOUT` (one that never says its preface after `HANDSHAKE_TIMEOUT`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from hpack.exceptions import HPACKError

from extproc.transport.budget import Budget
from extproc.transport.call import Call, GrpcError, Method, Status
from extproc.transport.frames import (
    DEFAULT_MAX_FRAME,
    DEFAULT_WINDOW,
    FRAME_HEADER_SIZE,
    MAX_FRAME_LIMIT,
    MAX_WINDOW,
    PREFACE,
    RESPONSE_HEADERS,
    ErrorCode,
    Flag,
    Kind,
    ProtocolError,
    Setting,
    frame,
    frame_header,
    goaway,
    header_fragment,
    parse_settings,
    rst_stream,
    settings,
    trailers,
    unpad,
    window_update,
)
from extproc.transport.header_blocks import HeaderBlocks

log = logging.getLogger(__name__)

STREAM_WINDOW = 64 * 1024
"""What one stream may have sent and not had consumed: a message up to this size needs no
WINDOW_UPDATE; a larger one is admitted to the receive budget (see `budget.py`)."""
CONNECTION_WINDOW = 16 * 1024 * 1024
"""The connection's window, credited as bytes arrive (the stream windows bound them)."""
MAX_FRAME = DEFAULT_MAX_FRAME
SEND_FRAME_LIMIT = 1024 * 1024
"""The largest DATA frame sent, whatever the peer allows: a peer that raises its limit may
check frames against the old one for a while (grpcio does), and one stream's huge frame
would hold back the others."""
MAX_HEADER_LIST = 16 * 1024
"""The largest header block taken (before and after decoding): gRPC metadata is small, and
HPACK decoding time grows faster than the block."""
OUTBOUND_LIMIT = 4 * 1024 * 1024
"""Bytes queued for a peer that does not read, beyond which it is told ENHANCE_YOUR_CALM."""
MAX_REFUSALS = 100
"""Streams a connection may open that are refused at once (unknown method, over the stream
cap) before it is told ENHANCE_YOUR_CALM: Envoy never does either, a flood does."""
REMEMBERED_STREAMS = 1024
"""Streams the client ended that a connection remembers, to answer late frames on them."""
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 300.0
"""Seconds a connection stays open without calls (Envoy opens a new one when it needs it)."""


class Connection(asyncio.Protocol):
    """Serves the calls of one client connection (Envoy keeps a few, each carrying many)."""

    def __init__(
        self,
        methods: Mapping[str, Method[Any]],
        track: Callable[[asyncio.Task[None], Call[Any]], None],
        *,
        max_message: int,
        max_streams: int,
        budget: Budget,
        on_close: Callable[[Connection], None] = lambda connection: None,
    ) -> None:
        self._methods = methods
        self._max_message = max_message
        self._max_streams = max_streams
        self._budget = budget
        self._track = track
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop
        """The loop it runs on, from `connection_made`: looking it up costs a system call each
        time (asyncio checks the process id)."""
        self._buffer = bytearray()
        self._awaited = 0
        """Bytes the buffer must hold before the frame it starts is whole."""
        self._preface_seen = False
        self._settings_seen = False
        self._header_blocks = HeaderBlocks(MAX_HEADER_LIST)
        self._calls: dict[int, Call[Any]] = {}
        """Streams open for frames, by id."""
        self._running = 0
        """Handlers not yet returned (a reset call counts until its handler is done)."""
        self._last_stream_id = 0
        self._refusals = 0
        self._ended_by_client: OrderedDict[int, None] = OrderedDict()
        self._header_block: tuple[int, int, bytearray] | None = None
        self._receive_window = CONNECTION_WINDOW
        self._owed = 0
        """Bytes received on the connection and not yet credited back."""
        self._send_window = DEFAULT_WINDOW
        self._peer_stream_window = DEFAULT_WINDOW
        self._peer_max_frame = DEFAULT_MAX_FRAME
        self._senders: list[asyncio.Future[None]] = []
        self._outbound: list[bytes] = []
        """Frames written since the last flush: one send for all a loop iteration makes."""
        self._flush_scheduled = False
        self._writing_paused = False
        self._peer_going_away = False
        self._timer: asyncio.TimerHandle | None = None
        self.idle_since: float | None = None
        """Since when the connection has had no calls (loop time); None while it has some."""
        self.closed = False
        self._handlers: dict[int, Callable[[int, int, memoryview], None]] = {
            Kind.DATA: self._on_data,
            Kind.HEADERS: self._on_headers,
            Kind.CONTINUATION: self._on_continuation,
            Kind.RST_STREAM: self._on_reset,
            Kind.SETTINGS: self._on_settings,
            Kind.WINDOW_UPDATE: self._on_window_update,
            Kind.PING: self._on_ping,
            Kind.GOAWAY: self._on_goaway,
            Kind.PUSH_PROMISE: self._on_push_promise,
            Kind.PRIORITY: self._on_priority,
        }

    @property
    def stream_window(self) -> int:
        """What a stream may send before it is credited (messages larger need admission)."""
        return STREAM_WINDOW

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not asserted to be an asyncio.Transport: uvloop's transports are not subclasses.
        self._transport = cast("asyncio.Transport", transport)
        self.loop = asyncio.get_running_loop()
        ours = {
            Setting.MAX_CONCURRENT_STREAMS: self._max_streams,
            Setting.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            Setting.MAX_FRAME_SIZE: MAX_FRAME,
            Setting.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
        }
        self._transport.write(settings(ours) + window_update(0, CONNECTION_WINDOW - DEFAULT_WINDOW))
        self._set_timer(HANDSHAKE_TIMEOUT)
        self.idle_since = self.loop.time()  # evictable until it has calls

    def data_received(self, data: bytes) -> None:
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._awaited:
                return  # the frame being received is not whole yet: no copy until it is
            data = bytes(self._buffer)
            self._buffer.clear()
        try:
            consumed = self._read_frames(data)
        except ProtocolError as error:
            self._fail(error)
            return
        if consumed < len(data) and not self.closed:
            rest = data[consumed:]
            self._buffer += rest
            self._awaited = _frame_length(rest) if self._preface_seen else len(PREFACE)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        for call in self._calls.values():
            call.end()
        self._calls.clear()
        self._wake_senders()
        self._on_close(self)

    def pause_writing(self) -> None:
        # The peer does not read what it is sent: read nothing more of it meanwhile.
        self._writing_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()
        self._wake_senders()

    # for the server and the calls

    def close(self) -> None:
        """Tell the client no further streams are taken, then close."""
        if self._transport is not None and not self.closed:
            self._flush()
            self._transport.write(goaway(self._last_stream_id, ErrorCode.NO_ERROR))
            self._transport.close()

    def credit(self, call: Call[Any], size: int) -> None:
        """The handler consumed `size` bytes of the call's stream: the client may send them
        again (credited in batches, at once while a message waits for them)."""
        if call.reset or self.closed:
            return
        call.owed += size
        if call.owed >= STREAM_WINDOW // 2 or call.receiving:
            self._credit_stream(call)

    async def send_data(
        self, call: Call[Any], pieces: Sequence[bytes | memoryview], size: int
    ) -> None:
        """Send `pieces` (`size` bytes in all) as DATA on the call's stream, within both
        flow-control windows, in frames the peer takes."""
        if call.reset or self.closed:
            return
        headers = call.response_headers()
        if (
            not self._writing_paused
            and size <= self._send_window
            and size <= call.send_window
            and size <= self._peer_max_frame
        ):
            self._send_window -= size
            call.send_window -= size
            # Joined now: the pieces may be views of buffers their owner reuses.
            self._write(
                b"".join((headers, frame_header(Kind.DATA, 0, call.stream_id, size), *pieces))
            )
            return
        # Larger than the windows or a frame: frame by frame, each written at once, so that a
        # peer slow to read pauses the sending (and one that never reads is caught).
        if headers:
            self._send_now(headers)
        remaining = deque(memoryview(piece) for piece in pieces if len(piece))
        while remaining:
            if call.reset or self.closed:
                return
            allowed = min(self._send_window, call.send_window, self._peer_max_frame, size)
            if allowed <= 0 or self._writing_paused:
                await self._wait_to_send()
                continue
            self._send_window -= allowed
            call.send_window -= allowed
            size -= allowed
            self._send_now(frame(Kind.DATA, 0, call.stream_id, _take(remaining, allowed)))

    # reading frames

    def _read_frames(self, data: bytes) -> int:
        """Handle every whole frame in `data`; returns how many bytes were used."""
        position = 0
        if not self._preface_seen:
            if len(data) < len(PREFACE):
                if not PREFACE.startswith(data):
                    raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 preface")
                return 0
            if not data.startswith(PREFACE):
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            self._preface_seen = True
            position = len(PREFACE)
        end = len(data)
        view = memoryview(data)
        while end - position >= FRAME_HEADER_SIZE and not self.closed:
            size = (data[position] << 16) | (data[position + 1] << 8) | data[position + 2]
            if size > MAX_FRAME:
                raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, f"a frame of {size} bytes")
            start = position + FRAME_HEADER_SIZE
            if end - start < size:
                break
            kind, flags = data[position + 3], data[position + 4]
            stream_id = int.from_bytes(data[position + 5 : start], "big") & MAX_WINDOW
            position = start + size
            self._on_frame(kind, flags, stream_id, view[start:position])
        return position

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: memoryview) -> None:
        if self._header_block is not None and kind != Kind.CONTINUATION:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "a header block was interrupted")
        if not self._settings_seen:
            if kind != Kind.SETTINGS or flags & Flag.ACK:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "the preface's SETTINGS is missing")
            self._settings_seen = True
            self._become_idle()
        if kind in _CONNECTION_FRAMES:
            if stream_id:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, f"frame type {kind} on a stream")
        elif kind in _STREAM_FRAMES and not stream_id:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, f"frame type {kind} on stream 0")
        handler = self._handlers.get(kind)
        if handler is not None:  # other frame types are ignored, as RFC 9113 §5.5 asks
            handler(flags, stream_id, payload)

    def _on_goaway(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if len(payload) < 8:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
        self._peer_going_away = True
        self._close_if_done()

    def _on_push_promise(self, flags: int, stream_id: int, payload: memoryview) -> None:
        raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "a client sent PUSH_PROMISE")

    def _on_priority(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if len(payload) != 5:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "PRIORITY is not 5 bytes")

    def _on_data(self, flags: int, stream_id: int, payload: memoryview) -> None:
        size = len(payload)
        self._receive_window -= size
        if self._receive_window < 0:
            raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        self._owed += size
        if self._owed >= CONNECTION_WINDOW // 2:
            self._write(window_update(0, self._owed))
            self._receive_window += self._owed
            self._owed = 0
        call = self._calls.get(stream_id)
        if call is None:
            if stream_id > self._last_stream_id:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "DATA on an idle stream")
            if stream_id in self._ended_by_client:  # RFC 9113 §5.1: nothing after END_STREAM
                self._write(rst_stream(stream_id, ErrorCode.STREAM_CLOSED))
            return  # the call is over; its late bytes only count for the connection
        if call.ended:
            self._end_call(call, ErrorCode.STREAM_CLOSED)
            return
        call.receive_window -= size
        if call.receive_window < 0:
            self._end_call(call, ErrorCode.FLOW_CONTROL_ERROR)
            return
        content = unpad(flags, payload)
        try:
            credit = call.receive(content, end=bool(flags & Flag.END_STREAM))
        except GrpcError as error:
            self._write(call.closing_frame(error.status, error.message))
            self._end_call(call, ErrorCode.NO_ERROR)
            return
        credit += size - len(content)  # padding is nobody's to consume
        if credit:
            self.credit(call, credit)
        elif call.owed and call.receiving:
            self._credit_stream(call)

    def _on_headers(self, flags: int, stream_id: int, payload: memoryview) -> None:
        fragment = header_fragment(flags, payload)
        if flags & Flag.END_HEADERS:
            self._on_header_block(stream_id, flags, bytes(fragment))
        else:
            self._header_block = (stream_id, flags, bytearray(fragment))

    def _on_continuation(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if self._header_block is None or self._header_block[0] != stream_id:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        _, first_flags, block = self._header_block
        block += payload
        if len(block) > MAX_HEADER_LIST:
            raise ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, "a header block over the limit")
        if flags & Flag.END_HEADERS:
            self._header_block = None
            self._on_header_block(stream_id, first_flags, bytes(block))

    def _on_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        if len(block) > MAX_HEADER_LIST:
            raise ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, "a header block over the limit")
        try:
            # Decoded whatever becomes of the stream: the HPACK table is the connection's.
            # Not raw: names and values come as str.
            headers = self._header_blocks.decode(block)
        except HPACKError as error:
            raise ProtocolError(ErrorCode.COMPRESSION_ERROR, f"header block: {error}") from None
        end = bool(flags & Flag.END_STREAM)
        call = self._calls.get(stream_id)
        if call is not None:  # trailers: gRPC clients send none, but they end the stream
            if not end:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "trailers without END_STREAM")
            try:
                call.receive(b"", end=True)
            except GrpcError as error:
                self._write(call.closing_frame(error.status, error.message))
                self._end_call(call, ErrorCode.NO_ERROR)
            return
        if not stream_id % 2:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "a client opened an even stream")
        if stream_id <= self._last_stream_id:
            self._write(rst_stream(stream_id, ErrorCode.STREAM_CLOSED))
            return
        self._last_stream_id = stream_id
        if self._running >= self._max_streams:  # the client ignored our SETTINGS
            self._refuse()
            self._write(rst_stream(stream_id, ErrorCode.REFUSED_STREAM))
            return
        self._open_call(stream_id, headers, end=end)

    def _open_call(self, stream_id: int, headers: list[tuple[str, str]], *, end: bool) -> None:
        path = method = content_type = ""
        metadata: list[tuple[str, str]] = []
        for name, value in headers:
            if name == ":path":
                path = value
            elif name == ":method":
                method = value
            elif name == "content-type":
                content_type = value
            elif not name.startswith(":"):
                metadata.append((name, value))
        target = self._methods.get(path)
        if target is None or method != "POST" or not content_type.startswith("application/grpc"):
            self._refuse()
            block = RESPONSE_HEADERS + trailers(Status.UNIMPLEMENTED, f"no method {path}")
            self._write(frame(Kind.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, stream_id, block))
            return
        call = Call(
            self,
            stream_id,
            target.request_type,
            metadata,
            send_window=self._peer_stream_window,
            receive_window=STREAM_WINDOW,
            max_message=self._max_message,
            budget=self._budget,
        )
        self._calls[stream_id] = call
        self._running += 1
        self._cancel_timer()
        self.idle_since = None
        if end:
            call.receive(b"", end=True)
        self._track(self.loop.create_task(self._run(call, target, path)), call)

    async def _run(self, call: Call[Any], method: Method[Any], path: str) -> None:
        status, message = Status.OK, ""
        try:
            await method.handler(call)
        except GrpcError as error:
            status, message = error.status, error.message
            if status == Status.INVALID_ARGUMENT:
                log.warning("gRPC method %s refused a client's message: %s", path, message)
        except asyncio.CancelledError:
            self._calls.pop(call.stream_id, None)
            call.end()
            self._handler_done()
            raise
        except Exception:
            log.exception("gRPC method %s failed", path)
            status, message = Status.INTERNAL, "internal error"
        if self._calls.pop(call.stream_id, None) is not None and not self.closed:
            self._write(call.closing_frame(status, message))
            if not call.ended:  # answered before the client finished: it may stop sending
                self._write(rst_stream(call.stream_id, ErrorCode.NO_ERROR))
            elif not call.reset:
                self._remember_ended(call.stream_id)
        call.end()
        self._handler_done()
        self._close_if_done()

    def _remember_ended(self, stream_id: int) -> None:
        """Note a stream the client ended, whose call is over (the latest few)."""
        self._ended_by_client[stream_id] = None
        if len(self._ended_by_client) > REMEMBERED_STREAMS:
            self._ended_by_client.popitem(last=False)

    def _refuse(self) -> None:
        self._refusals += 1
        if self._refusals > MAX_REFUSALS:
            raise ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, "too many streams refused")

    def _handler_done(self) -> None:
        self._running -= 1
        if not self._running:
            self._become_idle()

    def _on_reset(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if len(payload) != 4:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM is not 4 bytes")
        if stream_id > self._last_stream_id:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on an idle stream")
        call = self._calls.pop(stream_id, None)
        if call is not None:
            call.end()
            self._wake_senders()  # a sender blocked on this stream gives up

    def _on_settings(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if flags & Flag.ACK:
            if payload:
                raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "a SETTINGS ACK with content")
            return
        for key, value in parse_settings(payload):
            if key == Setting.INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self._peer_stream_window
                self._peer_stream_window = value
                for call in self._calls.values():
                    call.send_window += delta
                    if call.send_window > MAX_WINDOW:
                        raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "a window overflowed")
            elif key == Setting.MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME <= value <= MAX_FRAME_LIMIT:
                    raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range")
                self._peer_max_frame = min(value, SEND_FRAME_LIMIT)
            elif key == Setting.ENABLE_PUSH and value > 1:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "ENABLE_PUSH is neither 0 nor 1")
        self._write(frame(Kind.SETTINGS, Flag.ACK, 0))
        self._wake_senders()

    def _on_window_update(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if len(payload) != 4:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE is not 4 bytes")
        increment = int.from_bytes(payload, "big") & MAX_WINDOW
        if not stream_id:
            if not increment:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "a WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "the send window overflowed")
        else:
            call = self._calls.get(stream_id)
            if call is None:
                if stream_id > self._last_stream_id:
                    raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
                return
            call.send_window += increment
            if not increment:
                self._end_call(call, ErrorCode.PROTOCOL_ERROR)
            elif call.send_window > MAX_WINDOW:
                self._end_call(call, ErrorCode.FLOW_CONTROL_ERROR)
        self._wake_senders()

    def _on_ping(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if len(payload) != 8:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "PING is not 8 bytes")
        if not flags & Flag.ACK:
            self._write(frame(Kind.PING, Flag.ACK, 0, bytes(payload)))

    # helpers

    def _credit_stream(self, call: Call[Any]) -> None:
        owed, call.owed = call.owed, 0
        call.receive_window += owed
        self._write(window_update(call.stream_id, owed))

    def _end_call(self, call: Call[Any], code: ErrorCode) -> None:
        """Reset the call's stream: its handler sees the end and its answers are dropped."""
        self._write(rst_stream(call.stream_id, code))
        self._calls.pop(call.stream_id, None)
        call.end()
        self._wake_senders()

    def _write(self, data: bytes) -> None:
        """Queue frames for the socket: what one turn of the event loop writes goes out in one
        send (a call's answer, its credit, its trailers) at the start of the next turn."""
        if self._transport is None or self.closed:
            return
        self._outbound.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._send_now()

    def flush(self) -> None:
        """Write the queued frames at once (the scheduled turn then finds nothing to write)."""
        self._send_now()

    def _send_now(self, data: bytes = b"") -> None:
        """Write `data` at once, after the frames queued before it (a SETTINGS ACK among them
        must precede frames sized by the new settings)."""
        outbound, self._outbound = self._outbound, []
        if outbound:
            data = outbound[0] if len(outbound) == 1 and not data else b"".join((*outbound, data))
        transport = self._transport
        if transport is None or self.closed or not data:
            return
        transport.write(data)
        if self._writing_paused and transport.get_write_buffer_size() > OUTBOUND_LIMIT:
            self._fail(ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, "the peer does not read"))

    async def _wait_to_send(self) -> None:
        waiter = self.loop.create_future()
        self._senders.append(waiter)
        await waiter

    def _wake_senders(self) -> None:
        senders, self._senders = self._senders, []
        for waiter in senders:
            if not waiter.done():
                waiter.set_result(None)

    def _close_if_done(self) -> None:
        if self._peer_going_away and not self._running and self._transport is not None:
            self._transport.close()

    def _become_idle(self) -> None:
        if not self.closed:
            self.idle_since = self.loop.time()
            self._set_timer(IDLE_TIMEOUT)

    def _set_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, self._time_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _time_out(self) -> None:
        """No preface in time, or no call for too long: say GOAWAY and close."""
        self._timer = None
        if not self._running:
            self.close()
            self.closed = True

    def _fail(self, error: ProtocolError) -> None:
        if self.closed:
            return
        peer = self._transport.get_extra_info("peername") if self._transport else None
        log.warning("closing the HTTP/2 connection from %s: %s", peer or "a client", error)
        if self._transport is not None:
            outbound, self._outbound = self._outbound, []  # what was queued goes first
            self._transport.write(b"".join((*outbound, goaway(self._last_stream_id, error.code))))
            self._transport.close()
        self.closed = True


def _take(pieces: deque[memoryview], size: int) -> bytes:
    """The next `size` bytes of `pieces`, taken off their front."""
    taken = []
    while size:
        piece = pieces[0]
        if len(piece) <= size:
            taken.append(piece)
            pieces.popleft()
            size -= len(piece)
        else:
            taken.append(piece[:size])
            pieces[0] = piece[size:]
            size = 0
    return b"".join(taken)


def _frame_length(data: bytes) -> int:
    """The length of the frame `data` starts (header included), or of its header when that is
    not whole yet."""
    if len(data) < FRAME_HEADER_SIZE:
        return FRAME_HEADER_SIZE
    return FRAME_HEADER_SIZE + ((data[0] << 16) | (data[1] << 8) | data[2])


_CONNECTION_FRAMES = frozenset((Kind.SETTINGS, Kind.PING, Kind.GOAWAY))
_STREAM_FRAMES = frozenset(
    (Kind.DATA, Kind.HEADERS, Kind.PRIORITY, Kind.RST_STREAM, Kind.CONTINUATION)
)
