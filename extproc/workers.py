"""Several processor workers (one process per core: the GIL), each on its own address."""

from __future__ import annotations

import sys
from pathlib import Path

from extproc.supervisor import Supervisor


async def serve_workers(config: Path, addresses: list[str], flags: list[str]) -> int:
    """Start one `extproc serve` per address (with the command line's `flags`), each started
    again when it dies; stop all on SIGINT/SIGTERM."""
    supervisor = Supervisor()
    try:
        for index, address in enumerate(addresses):
            argv = [sys.executable, "-m", "extproc", "serve", "--config", str(config), *flags]
            await supervisor.start(
                f"worker {index}",
                [*argv, "--address", address, "--workers", "1", "--worker-index", str(index)],
                restart=True,
            )
        await supervisor.wait()  # every worker is restarted: only a signal ends this
        return 0
    finally:
        await supervisor.stop()
