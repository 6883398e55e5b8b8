"""One gRPC call on one HTTP/2 stream, as its handler sees it.

Flow control follows consumption: the client may send a stream's window and no more, and a
message's bytes are credited back to it once the handler has taken the message — except
for a message larger than the window, which could never arrive that way: it is credited as
it arrives, once admitted to the receive budget its size asks for (see `budget.py`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from extproc.compiled import as_buffer
from extproc.transport.budget import Budget
from extproc.transport.frames import (
    RESPONSE_HEADERS,
    Flag,
    Kind,
    frame,
    trailers,
)

if TYPE_CHECKING:
    from extproc.transport.connection import Connection

RequestT = TypeVar("RequestT", bound=Message)
PREFIX = 5
"""A gRPC message's prefix: a compression flag and a 4-byte length."""


class Status(IntEnum):
    """gRPC status codes the server speaks."""

    OK = 0
    INVALID_ARGUMENT = 3
    RESOURCE_EXHAUSTED = 8
    UNIMPLEMENTED = 12
    INTERNAL = 13


class GrpcError(Exception):
    """Raised by a handler to end its call with this status."""

    def __init__(self, status: Status, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Method(Generic[RequestT]):
    """A served method: its handler and the type of the messages it receives. (Not a
    dataclass: mypyc cannot compile a generic one.)"""

    __slots__ = ("handler", "request_type")

    def __init__(
        self, handler: Callable[[Call[RequestT]], Awaitable[None]], request_type: type[RequestT]
    ) -> None:
        self.handler = handler
        self.request_type = request_type


class _Received:
    """A message received and not yet taken. (Not a dataclass: mypyc cannot compile one with
    a memoryview field.)"""

    __slots__ = ("held", "raw", "uncredited")

    def __init__(self, raw: memoryview, uncredited: int, held: int) -> None:
        self.raw = raw
        """The message without its prefix."""
        self.uncredited = uncredited
        """Its bytes to credit once the handler takes it."""
        self.held = held
        """The receive budget it holds until the handler is done with it."""


class Call(Generic[RequestT]):
    """Receives the client's messages and sends answers; the handler returning (or raising
    GrpcError) ends the call with its status. When the client resets the stream, `recv`
    reports the end and `send` drops its message: nobody is listening any more."""

    __slots__ = (
        "_admitted",
        "_assembly",
        "_budget",
        "_connection",
        "_expected",
        "_have",
        "_held",
        "_inbound",
        "_max_message",
        "_messages",
        "_request_type",
        "_uncredited",
        "_waiter",
        "ended",
        "finishing",
        "headers_sent",
        "metadata",
        "owed",
        "receive_window",
        "reset",
        "send_window",
        "stream_id",
    )

    def __init__(
        self,
        connection: Connection,
        stream_id: int,
        request_type: type[RequestT],
        metadata: list[tuple[str, str]],
        *,
        send_window: int,
        receive_window: int,
        max_message: int,
        budget: Budget,
    ) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self._request_type = request_type
        self.metadata = metadata
        """The call's custom headers (gRPC metadata), such as Envoy's trace context."""
        self.send_window = send_window
        self.receive_window = receive_window
        """What the client may still send on this stream before it is credited more."""
        self.owed = 0
        """Bytes consumed and not yet credited back (credits go out in batches)."""
        self._max_message = max_message
        self._budget = budget
        self._inbound: list[bytes] = []
        """The message being received, in pieces (joined once, when whole)."""
        self._assembly: bytearray | None = None
        """Instead, once an admitted large message: the whole of it, filled as it comes."""
        self._have = 0
        """How many bytes of it are in."""
        self._expected = 0
        """Its length with the prefix, once the prefix is in; 0 before."""
        self._admitted = False
        """Whether it is credited as it arrives (it is larger than the window and admitted)."""
        self._uncredited = 0
        """Received bytes of it not credited yet."""
        self._messages: deque[_Received] = deque()
        """Whole messages the handler has not taken, with their bytes yet to credit."""
        self._held = 0
        """Budget held for the message the handler took last (freed when it asks again)."""
        self._waiter: asyncio.Future[None] | None = None
        self.ended = False
        self.reset = False
        self.headers_sent = False
        self.finishing = False
        """Set by a handler winding up (settling what its call held, say): a server closing
        lets it finish rather than cancelling it."""

    async def recv(self) -> RequestT | None:
        """The next message; None once the client has sent its last one (or reset). A
        message that does not parse ends the call with INVALID_ARGUMENT."""
        raw = await self.recv_serialized()
        if raw is None:
            return None
        try:
            # upb parses any buffer: the message is not copied out of what was received.
            return self._request_type.FromString(as_buffer(raw))
        except DecodeError:
            raise GrpcError(Status.INVALID_ARGUMENT, "a message that does not parse") from None

    async def recv_serialized(self) -> memoryview | None:
        """The next message as received, unparsed (a view: parse it before asking for the
        next); None once the client has sent its last one (or reset)."""
        self._release()
        while not self._messages:
            if self.ended:
                return None
            self._waiter = self._connection.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        received = self._messages.popleft()
        if received.uncredited:
            self._connection.credit(self, received.uncredited)
        self._held = received.held
        return received.raw

    def __aiter__(self) -> Call[RequestT]:
        return self

    async def __anext__(self) -> RequestT:
        message = await self.recv()
        if message is None:
            raise StopAsyncIteration
        return message

    async def send(self, message: Message) -> None:
        await self.send_serialized((message.SerializeToString(),))

    async def send_serialized(self, pieces: Sequence[bytes | memoryview]) -> None:
        """Send a message serialised already, in pieces that are written as they are."""
        size = sum(len(piece) for piece in pieces)
        prefix = b"\x00" + size.to_bytes(4, "big")
        await self._connection.send_data(self, (prefix, *pieces), PREFIX + size)

    def flush(self) -> None:
        """Write what was sent so far now, not at the next turn of the event loop (the handler
        has more work before it yields)."""
        self._connection.flush()

    def response_headers(self) -> bytes:
        """The response's HEADERS frame the first time it is asked for, then nothing."""
        if self.headers_sent:
            return b""
        self.headers_sent = True
        return frame(Kind.HEADERS, Flag.END_HEADERS, self.stream_id, RESPONSE_HEADERS)

    def closing_frame(self, status: Status, message: str) -> bytes:
        """Trailers ending the call (headers and trailers in one block if nothing was sent)."""
        block = trailers(status, message)
        if not self.headers_sent:
            self.headers_sent = True
            block = RESPONSE_HEADERS + block
        return frame(Kind.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, self.stream_id, block)

    def receive(self, data: bytes | memoryview, *, end: bool) -> int:
        """Bytes of the request stream (the DATA frame's content); whole length-prefixed
        messages become receivable. Returns how many of them to credit now."""
        credit = 0
        view = memoryview(data)
        while view:
            if not self._expected:
                taken = self._read_prefix(view)
            else:
                taken = min(len(view), self._expected - self._have)
                if self._assembly is not None:
                    self._assembly[self._have : self._have + taken] = view[:taken]
                else:
                    self._inbound.append(bytes(view[:taken]))
                self._have += taken
            if self._admitted:
                credit += taken
            else:
                self._uncredited += taken
            view = view[taken:]
            if self._expected and self._have == self._expected:
                self._complete()
        if end:
            self.ended = True
            if self._have:
                raise GrpcError(Status.INVALID_ARGUMENT, "the stream ended inside a message")
        self._wake()
        return credit

    @property
    def receiving(self) -> bool:
        """A message is partly in and waits for credit to come whole."""
        return self._have > 0 and not self._admitted

    def admit(self) -> None:
        """The budget admitted the message being received: from now on it is received in
        one buffer of its size, and credited as it comes (what came of it so far too)."""
        self._admitted = True
        self._assembly = bytearray(self._expected)
        position = 0
        for piece in self._inbound:
            self._assembly[position : position + len(piece)] = piece
            position += len(piece)
        self._inbound = []
        uncredited, self._uncredited = self._uncredited, 0
        if uncredited:
            self._connection.credit(self, uncredited)

    def end(self) -> None:
        """The client reset the stream (or the connection went): no more messages, and no
        one reads answers."""
        self.reset = self.ended = True
        self._budget.withdraw(self)
        held = sum(message.held for message in self._messages)
        if self._admitted:
            held += self._expected
        self._budget.release(held)
        self._messages.clear()
        self._inbound.clear()
        self._assembly = None
        self._have = self._expected = 0
        self._admitted = False
        self._release()
        self._wake()

    def _read_prefix(self, view: memoryview) -> int:
        """Take bytes of a message's prefix (or the whole message when all of it is here);
        once the prefix is whole, check the length it gives and ask for admission when the
        message is larger than the window."""
        if not self._have and len(view) >= PREFIX:
            prefix = bytes(view[:PREFIX])
            size = self._check(prefix)
            if len(view) >= PREFIX + size and PREFIX + size <= self._connection.stream_window:
                # The common case: a message whole in one frame, copied once.
                self._expected = self._have = PREFIX + size
                self._inbound.append(bytes(view[: PREFIX + size]))
                return PREFIX + size
            self._inbound.append(prefix)
            self._have = PREFIX
            self._expect(size)
            return PREFIX
        taken = min(PREFIX - self._have, len(view))
        self._inbound.append(bytes(view[:taken]))
        self._have += taken
        if self._have == PREFIX:
            prefix = b"".join(self._inbound)
            self._inbound = [prefix]
            self._expect(self._check(prefix))
        return taken

    def _check(self, prefix: bytes) -> int:
        """The length a message prefix gives, if the message is acceptable."""
        if prefix[0]:
            raise GrpcError(Status.UNIMPLEMENTED, "compressed messages are not accepted")
        size = int.from_bytes(prefix[1:PREFIX], "big")
        if size > self._max_message:
            raise GrpcError(Status.RESOURCE_EXHAUSTED, f"message over {self._max_message} bytes")
        return size

    def _expect(self, size: int) -> None:
        self._expected = PREFIX + size
        if self._expected > self._connection.stream_window:
            self._budget.request(self, self._expected)

    def _complete(self) -> None:
        if self._assembly is not None:
            raw: bytes | bytearray = self._assembly
        else:
            raw = self._inbound[0] if len(self._inbound) == 1 else b"".join(self._inbound)
        held = self._expected if self._admitted else 0
        self._messages.append(_Received(memoryview(raw)[PREFIX:], self._uncredited, held))
        self._inbound = []
        self._assembly = None
        self._expected = self._have = self._uncredited = 0
        self._admitted = False

    def _release(self) -> None:
        if self._held:
            self._budget.release(self._held)
            self._held = 0

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (self._messages or self.ended):
            waiter.set_result(None)
