"""One gRPC call on one HTTP/2 stream, as its handler sees it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Generic, TypeVar

from google.protobuf.message import Message

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


@dataclass(frozen=True, slots=True)
class Method(Generic[RequestT]):
    """A served method: its handler and the type of the messages it receives."""

    handler: Callable[[Call[RequestT]], Awaitable[None]]
    request_type: type[RequestT]


class Call(Generic[RequestT]):
    """Receives the client's messages and sends answers; the handler returning (or raising
    GrpcError) ends the call with its status. When the client resets the stream, `recv`
    reports the end and `send` drops its message: nobody is listening any more."""

    __slots__ = (
        "_connection",
        "_inbound",
        "_max_message",
        "_messages",
        "_request_type",
        "_waiter",
        "ended",
        "headers_sent",
        "metadata",
        "reset",
        "send_window",
        "stream_id",
        "unacknowledged",
    )

    def __init__(
        self,
        connection: Connection,
        stream_id: int,
        request_type: type[RequestT],
        metadata: list[tuple[str, str]],
        *,
        send_window: int,
        max_message: int,
    ) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self._request_type = request_type
        self.metadata = metadata
        """The call's custom headers (gRPC metadata), such as Envoy's trace context."""
        self.send_window = send_window
        self._max_message = max_message
        self._inbound = bytearray()
        self._messages: deque[bytes | None] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.ended = False
        self.reset = False
        self.headers_sent = False
        self.unacknowledged = 0

    async def recv(self) -> RequestT | None:
        """The next message; None once the client has sent its last one (or reset)."""
        while not self._messages:
            if self.ended:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        raw = self._messages.popleft()
        return None if raw is None else self._request_type.FromString(raw)

    def __aiter__(self) -> Call[RequestT]:
        return self

    async def __anext__(self) -> RequestT:
        message = await self.recv()
        if message is None:
            raise StopAsyncIteration
        return message

    async def send(self, message: Message) -> None:
        data = message.SerializeToString()
        payload = b"\x00" + len(data).to_bytes(4, "big") + data
        await self._connection.send_data(self, payload)

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

    def receive(self, data: bytes, *, end: bool) -> None:
        """Bytes of the request stream; whole length-prefixed messages become receivable."""
        inbound = self._inbound
        inbound += data
        while len(inbound) >= 5:
            size = int.from_bytes(inbound[1:5], "big")
            if inbound[0]:
                raise GrpcError(Status.UNIMPLEMENTED, "compressed messages are not accepted")
            if size > self._max_message:
                raise GrpcError(
                    Status.RESOURCE_EXHAUSTED, f"message over {self._max_message} bytes"
                )
            if len(inbound) < 5 + size:
                break
            self._messages.append(bytes(inbound[5 : 5 + size]))
            del inbound[: 5 + size]
        if end:
            self.ended = True
        self._wake()

    def end(self) -> None:
        """The client reset the stream: no more messages, and no one reads answers."""
        self.reset = self.ended = True
        self._messages.clear()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (self._messages or self.ended):
            waiter.set_result(None)
