"""The listening side: accepts connections and serves the registered methods on each."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import Any

from extproc.transport.call import Method
from extproc.transport.connection import Connection

MAX_STREAMS = 1024
"""Calls open at once on one connection: one per HTTP request Envoy has in flight."""


class Server:
    """A gRPC server over cleartext HTTP/2 (prior knowledge, as Envoy and gRPC clients
    connect) on TCP or a Unix socket; `methods` maps `/package.Service/Method` paths."""

    def __init__(
        self,
        methods: Mapping[str, Method[Any]],
        *,
        max_message: int,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        """`max_message`: the largest message a call may receive (bytes); `max_streams`: the
        calls one connection may have open at once (a client needing more opens another
        connection, as Envoy does)."""
        self._methods = dict(methods)
        self._max_message = max_message
        self._max_streams = max_streams
        self._listener: asyncio.Server | None = None
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._connection, host, port)

    async def start_unix(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_unix_server(self._connection, path)

    def close(self) -> None:
        """Stop listening, say GOAWAY on every connection and close it; calls still running
        are cancelled."""
        if self._listener is not None:
            self._listener.close()
        for connection in list(self._connections):
            connection.close()
        for task in self._tasks:
            task.cancel()

    async def wait_closed(self) -> None:
        if self._listener is not None:
            await self._listener.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _connection(self) -> Connection:
        connection = Connection(
            self._methods,
            self._track,
            max_message=self._max_message,
            max_streams=self._max_streams,
        )
        self._connections.add(connection)
        return connection

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
