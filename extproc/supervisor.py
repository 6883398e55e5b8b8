"""Child processes started together and stopped together (Envoy, processor workers, mock)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from extproc.signals import stop_requested

log = logging.getLogger(__name__)

STOP_TIMEOUT = 15.0


class Supervisor:
    """Starts children, notices the first one to exit, and stops the rest in reverse order."""

    def __init__(self) -> None:
        self._children: list[tuple[str, asyncio.subprocess.Process]] = []

    async def start(self, name: str, argv: Sequence[str]) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(*argv)
        self._children.append((name, process))
        log.debug("started %s (pid %d)", name, process.pid)
        return process

    async def first_exit(self) -> str:
        """Wait until any child exits; returns its name."""
        waits = {asyncio.ensure_future(process.wait()): name for name, process in self._children}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return waits[done.pop()]

    async def wait(self) -> str | None:
        """Until SIGINT/SIGTERM (returns None) or a child's exit (returns its name)."""
        stop = stop_requested()
        exited = asyncio.ensure_future(self.first_exit())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if exited.done():
            return exited.result()
        exited.cancel()
        return None

    async def stop(self) -> None:
        """SIGTERM each child, newest first, and wait; SIGKILL any that outstays the timeout."""
        for name, process in reversed(self._children):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    log.warning("%s did not stop in %.0fs; killing it", name, STOP_TIMEOUT)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
