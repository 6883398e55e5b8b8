"""Child processes started together and stopped together (Envoy, processor workers, mock).

A child started with `restart=True` (a processor) is started again when it exits, after a
backoff that grows while it keeps failing quickly; the others stay up meanwhile (Envoy fails
closed with 503 until the processor is back). Any other child's exit ends the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from extproc.signals import stop_requested

log = logging.getLogger(__name__)

STOP_TIMEOUT = 15.0
RESTART_BACKOFF = (0.1, 10.0)
"""First and longest wait (seconds) before a restart; the wait doubles with each exit that
follows a short run."""
STEADY_RUN = 30.0
"""A child that ran this long before exiting is restarted after the first wait again."""


@dataclass(slots=True)
class _Child:
    name: str
    argv: Sequence[str]
    restart: bool
    process: asyncio.subprocess.Process
    started: float
    backoff: float = RESTART_BACKOFF[0]

    def next_wait(self) -> float:
        """How long to wait before starting it again, given how long it ran."""
        if time.monotonic() - self.started >= STEADY_RUN:
            self.backoff = RESTART_BACKOFF[0]
        wait = self.backoff
        self.backoff = min(self.backoff * 2, RESTART_BACKOFF[1])
        return wait


class Supervisor:
    """Starts children, restarts those that should be, notices the first other one to exit,
    and stops the rest in reverse order."""

    def __init__(self) -> None:
        self._children: list[_Child] = []
        self.restarts = 0
        """Children started again after an exit."""

    async def start(
        self, name: str, argv: Sequence[str], *, restart: bool = False
    ) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(*argv)
        self._children.append(_Child(name, argv, restart, process, time.monotonic()))
        log.debug("started %s (pid %d)", name, process.pid)
        return process

    async def first_exit(self) -> str:
        """Wait until any child exits, restarted or not (start-up: nothing is restarted
        until the whole group came up once); returns its name."""
        child = await self._next_exit(None)
        assert child is not None
        return child.name

    async def wait(self) -> str | None:
        """Until SIGINT/SIGTERM (returns None) or the exit of a child that is not restarted
        (returns its name); restarts the others as they exit."""
        stopping = asyncio.ensure_future(stop_requested().wait())
        try:
            return await self._serve(stopping)
        finally:
            stopping.cancel()

    async def stop(self) -> None:
        """SIGTERM each child, newest first, and wait; SIGKILL any that outstays the timeout."""
        for child in reversed(self._children):
            process = child.process
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    log.warning("%s did not stop in %.0fs; killing it", child.name, STOP_TIMEOUT)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()

    async def _serve(self, stopping: asyncio.Future[Any]) -> str | None:
        while True:
            child = await self._next_exit(stopping)
            if child is None:
                return None
            if not child.restart:
                return child.name
            wait = child.next_wait()
            log.error(
                "%s exited (code %s); starting it again in %.1fs",
                child.name,
                child.process.returncode,
                wait,
            )
            await asyncio.wait({stopping}, timeout=wait)
            if stopping.done():
                return None
            child.process = await asyncio.create_subprocess_exec(*child.argv)
            child.started = time.monotonic()
            self.restarts += 1

    async def _next_exit(self, stopping: asyncio.Future[Any] | None) -> _Child | None:
        """The next child to exit; None when a stop was asked for first."""
        waits = {asyncio.ensure_future(child.process.wait()): child for child in self._children}
        watched: set[asyncio.Future[Any]] = set(waits)
        if stopping is not None:
            watched.add(stopping)
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        exited = [waits[task] for task in done if task in waits]
        return exited[0] if exited else None
