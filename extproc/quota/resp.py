"""A small Redis client for the quota store: one connection, commands pipelined on it.

Reservations and settlements are script calls (a loop turn's batched in one); under load,
many are in flight at once. A general client (a pool of connections, one send and one wake-up
per command, a timer task per call) costs more than the script itself. Here every command of
one turn of the event loop goes out in one write, replies come back in order on the same
connection and are parsed by hiredis (the C parser redis-py uses too), and each caller waits
on a plain future (or a batch of callers on one reply, answered as it is read).

A command whose caller stopped waiting (its deadline passed while Redis was frozen) keeps its
place in the line: its reply, when it comes, is read and dropped, so later replies still reach
their own callers. A lost connection fails every command waiting on it; the next command opens
a new one.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ssl
from collections import deque
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import hiredis


class RespError(Exception):
    """Redis answered with an error, or could not be reached or read."""


class ConnectionLost(RespError):
    """The connection went before the reply came (the command may or may not have run)."""


MAX_WAITING = 10_000
"""Commands one connection may have without a reply: past it (Redis frozen, callers giving
up one after another, each leaving its place in the line), new ones fail at once rather than
grow the line without bound."""


class Waiter(Protocol):
    """What waits for a reply in the line: a future, or anything answered the same way (a
    batch of callers, answered as the reply is read rather than a turn of the loop later)."""

    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class _Pipeline(asyncio.Protocol):
    """One connection; commands wait for their replies in the order they were sent, each
    until its deadline (one timer for the line, armed for its oldest command, rather than a
    timer per command)."""

    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        self._max_waiting = max_waiting
        self._transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader()
        self._waiting: deque[Waiter] = deque()
        """Every command sent and not answered yet, in order (replies come in that order)."""
        self._deadlines: deque[tuple[float, Waiter]] = deque()
        """Those not failed for lateness yet, with their deadlines (the line's order)."""
        self._outbound: list[bytes] = []
        self._flush_scheduled = False
        self._expiry: asyncio.TimerHandle | None = None
        self.lost = False
        self._loop: asyncio.AbstractEventLoop
        """The loop it runs on, from `connection_made`: looking it up costs a system call each
        time (asyncio checks the process id)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()

    def send(self, command: bytes, deadline: float) -> asyncio.Future[Any]:
        """The future reply; TimeoutError once the loop's clock passes `deadline`. Written
        with every other command of this turn of the loop, at its end."""
        reply = self._loop.create_future()
        if self._enqueue(command, deadline, reply) and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return reply

    def send_now(self, command: bytes, deadline: float, waiter: Waiter) -> None:
        """Write the command at once (with any waiting to go) for `waiter`: for a caller that
        gathered this turn's commands already."""
        if self._enqueue(command, deadline, waiter):
            self._flush()

    def _enqueue(self, command: bytes, deadline: float, waiter: Waiter) -> bool:
        """Put the command in line for `waiter`; False when it failed at once."""
        if self.lost:
            waiter.set_exception(ConnectionLost("the connection to Redis is closed"))
            return False
        if len(self._waiting) >= self._max_waiting:
            waiter.set_exception(RespError("too many commands wait for Redis to answer"))
            return False
        self._waiting.append(waiter)
        self._deadlines.append((deadline, waiter))
        self._outbound.append(command)
        if self._expiry is None:
            self._expiry = self._loop.call_at(deadline, self._expire)
        return True

    def _expire(self) -> None:
        """Fail the commands whose deadline passed; they keep their places in the line. (A
        command sent after a later-starting one, having waited for the connection, expires
        with the one before it.)"""
        loop = self._loop
        now = loop.time()
        self._expiry = None
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            waiter = deadlines.popleft()[1]
            if not waiter.done():
                waiter.set_exception(TimeoutError())
        if deadlines:
            self._expiry = loop.call_at(deadlines[0][0], self._expire)

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbound, self._outbound = self._outbound, []
        if self._transport is not None and not self.lost and outbound:
            self._transport.write(b"".join(outbound))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                waiter = self._waiting.popleft() if self._waiting else None
                if self._deadlines and self._deadlines[0][1] is waiter:
                    self._deadlines.popleft()
                if waiter is None or waiter.done():
                    continue  # its caller gave up: the reply only keeps the line in order
                if isinstance(reply, hiredis.ReplyError):
                    waiter.set_exception(RespError(str(reply)))
                else:
                    waiter.set_result(reply)
        except hiredis.ProtocolError as error:
            self._fail(ConnectionLost(f"Redis sent what is not RESP: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionLost("the connection to Redis was lost"))

    def close(self) -> None:
        self._fail(ConnectionLost("the connection to Redis was closed"))

    def _fail(self, error: RespError) -> None:
        self.lost = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        waiting, self._waiting = self._waiting, deque()
        self._deadlines.clear()
        for waiter in waiting:
            if not waiter.done():
                waiter.set_exception(error)
        if self._transport is not None:
            self._transport.close()


def encode(arguments: tuple[Any, ...]) -> bytes:
    """A command in RESP: an array of bulk strings (written by hiredis, in C)."""
    command: bytes = hiredis.pack_command(arguments)
    return command


def unknown_script(error: BaseException) -> bool:
    """Redis refused a script by its digest: it has not seen it since it started."""
    return str(error).startswith("NOSCRIPT")


class Script:
    """A Lua script run by its digest (EVALSHA), sent whole when Redis does not know it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.digest = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def by_digest(self, keys: list[str], arguments: list[Any]) -> tuple[Any, ...]:
        """The command that runs it by its digest."""
        return ("EVALSHA", self.digest, len(keys), *keys, *arguments)


class RespClient:
    def __init__(
        self, url: str, *, password: str | None, timeout: float, max_waiting: int = MAX_WAITING
    ) -> None:
        self._max_waiting = max_waiting
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"not a Redis URL: {parts.scheme}://…")
        self._scheme = parts.scheme
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._path = parts.path
        self._user = unquote(parts.username) if parts.username else None
        self._password = password or (unquote(parts.password) if parts.password else None)
        database = parts.path.strip("/") if parts.scheme != "unix" else ""
        self._database = int(database) if database.isdigit() else 0
        self._timeout = timeout
        self._pipeline: _Pipeline | None = None
        self._opening: asyncio.Lock | None = None

    async def execute(self, *arguments: Any) -> Any:
        """The command's reply. RespError when Redis refused it or could not be reached,
        TimeoutError when no reply came in time. A connection found gone (Redis restarted) is
        replaced once, at once."""
        command = encode(arguments)
        deadline = self.deadline()
        try:
            return await (await self._connected(deadline)).send(command, deadline)
        except ConnectionLost:
            return await (await self._connected(deadline)).send(command, deadline)

    def open_pipeline(self) -> _Pipeline | None:
        """The connection, when one is open (else `execute` opens one)."""
        pipeline = self._pipeline
        return pipeline if pipeline is not None and not pipeline.lost else None

    def deadline(self) -> float:
        """When a command sent now stops being waited for."""
        return asyncio.get_running_loop().time() + self._timeout

    async def run(self, script: Script, keys: list[str], arguments: list[Any]) -> Any:
        try:
            return await self.execute(*script.by_digest(keys, arguments))
        except RespError as error:
            if not unknown_script(error):
                raise
        return await self.load_and_run(script, keys, arguments)

    async def load_and_run(self, script: Script, keys: list[str], arguments: list[Any]) -> Any:
        """Run a script Redis does not know (yet), sending it whole."""
        return await self.execute("EVAL", script.source, len(keys), *keys, *arguments)

    async def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None

    async def _connected(self, deadline: float) -> _Pipeline:
        pipeline = self._pipeline
        if pipeline is not None and not pipeline.lost:
            return pipeline
        if self._opening is None:
            self._opening = asyncio.Lock()
        try:
            async with asyncio.timeout_at(deadline), self._opening:
                if self._pipeline is None or self._pipeline.lost:
                    self._pipeline = await self._open(deadline)
                return self._pipeline
        except OSError as error:
            raise RespError(f"Redis could not be reached: {error}") from None

    async def _open(self, deadline: float) -> _Pipeline:
        loop = asyncio.get_running_loop()
        pipeline: _Pipeline
        make = functools.partial(_Pipeline, self._max_waiting)
        if self._scheme == "unix":
            _, pipeline = await loop.create_unix_connection(make, self._path)
        else:
            tls = ssl.create_default_context() if self._scheme == "rediss" else None
            _, pipeline = await loop.create_connection(make, self._host, self._port, ssl=tls)
        greeting = []
        if self._password is not None:
            credentials = (self._user, self._password) if self._user else (self._password,)
            greeting.append(pipeline.send(encode(("AUTH", *credentials)), deadline))
        if self._database:
            greeting.append(pipeline.send(encode(("SELECT", self._database)), deadline))
        try:
            await asyncio.gather(*greeting)
        except RespError:
            pipeline.close()
            raise
        return pipeline
