"""The listening side: accepts connections and serves the registered methods on each."""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from collections.abc import Mapping
from typing import Any

from extproc.transport.budget import Budget
from extproc.transport.call import Call, Method
from extproc.transport.connection import Connection

log = logging.getLogger(__name__)

MAX_STREAMS = 256
"""Calls open at once on one connection: one per HTTP request Envoy has in flight (Envoy
opens another connection when it needs more)."""
MAX_CONNECTIONS = 1024
"""Connections open at once; a new one beyond takes the place of the longest idle (or is
closed when none is idle). Also kept under the process's file limit."""
FD_RESERVE = 64
"""Files kept free for everything else (Redis, the access log, telemetry)."""
BACKLOG = 1024


class Server:
    """A gRPC server over cleartext HTTP/2 (prior knowledge, as Envoy and gRPC clients
    connect) on TCP or a Unix socket; `methods` maps `/package.Service/Method` paths."""

    def __init__(
        self,
        methods: Mapping[str, Method[Any]],
        *,
        max_message: int,
        receive_budget: int,
        max_streams: int = MAX_STREAMS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        """`max_message`: the largest message a call may receive (bytes); `receive_budget`:
        how much of messages larger than a stream window all calls may hold at once (see
        `budget.py`); `max_streams`: the calls one connection may have open at once (a client
        needing more opens another connection, as Envoy does)."""
        self._methods = dict(methods)
        self._max_message = max_message
        self._max_streams = max_streams
        self._max_connections = min(max_connections, _file_limit() - FD_RESERVE)
        self.budget = Budget(receive_budget)
        self._listener: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._tasks: dict[asyncio.Task[None], Call[Any]] = {}
        """Each running handler, with its call."""
        self._refusing = False

    async def start(self, host: str, port: int, *, tls: ssl.SSLContext | None = None) -> None:
        """Listen on TCP; with `tls`, only clients that complete its handshake are served."""
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._connection, host, port, backlog=BACKLOG, ssl=tls
        )

    async def start_unix(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_unix_server(self._connection, path, backlog=BACKLOG)

    def close(self) -> None:
        """Stop listening, say GOAWAY on every connection and close it; calls still running
        are cancelled, but for those winding up (`Call.finishing`), which `wait_closed`
        waits for."""
        if self._listener is not None:
            self._listener.close()
        for connection in list(self._connections):
            connection.close()
        for task, call in self._tasks.items():
            if not call.finishing:
                task.cancel()

    async def wait_closed(self) -> None:
        if self._listener is not None:
            await self._listener.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _connection(self) -> asyncio.Protocol:
        if len(self._connections) >= self._max_connections and not self._make_room():
            return _Refusal()
        self._refusing = False
        connection = Connection(
            self._methods,
            self._track,
            max_message=self._max_message,
            max_streams=self._max_streams,
            budget=self.budget,
            on_close=self._connections.discard,
        )
        self._connections.add(connection)
        return connection

    def _make_room(self) -> bool:
        """Close the connection idle the longest; False when none is idle."""
        idle = [c for c in self._connections if c.idle_since is not None and not c.closed]
        if not idle:
            if not self._refusing:
                log.warning("%d connections open, none idle: refusing more", len(self._connections))
            self._refusing = True
            return False
        oldest = min(idle, key=lambda connection: connection.idle_since or 0.0)
        oldest.close()
        self._connections.discard(oldest)
        return True

    def _track(self, task: asyncio.Task[None], call: Call[Any]) -> None:
        self._tasks[task] = call
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        del self._tasks[task]


class _Refusal(asyncio.Protocol):
    """A connection over the limit: closed as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def _file_limit() -> int:
    """Raise the process's open-file limit to its hard limit (as servers do) and return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20
