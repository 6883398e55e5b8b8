"""Several processor workers (one process per core: the GIL), each on its own address."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from extproc.supervisor import Supervisor

log = logging.getLogger(__name__)


async def serve_workers(config: Path, addresses: list[str]) -> int:
    """Start one `extproc serve` per address; stop all on SIGINT/SIGTERM or when one dies."""
    supervisor = Supervisor()
    try:
        for index, address in enumerate(addresses):
            argv = [sys.executable, "-m", "extproc", "serve", "--config", str(config)]
            await supervisor.start(
                f"worker {index}",
                [*argv, "--address", address, "--workers", "1", "--worker-index", str(index)],
            )
        exited = await supervisor.wait()
        if exited is not None:
            log.error("%s exited; stopping the other workers", exited)
            return 1
        return 0
    finally:
        await supervisor.stop()
