"""How much memory a processor needs for a configuration, and whether a limit fits it.

Measured (tests/faults/test_memory_faults.py): a worker at rest holds about 80 MiB; a request
body costs at most about 2.5 times its size while it is read, translated and sent on; and each
worker takes in at most `BODIES_AT_ONCE` bodies larger than a stream window at a time (the
transport's receive budget: a further one waits). So a worker needs its rest size and four
largest bodies at their peak; `extproc serve` with several workers adds a small parent.
"""

from __future__ import annotations

from pathlib import Path

from extproc.config.model import Gateway

MiB = 1024 * 1024
WORKER_AT_REST = 128 * MiB
"""A worker's own memory with room for telemetry buffers and many small calls (measured:
about 80 MiB)."""
BODY_PEAK = 2.5
"""A body's cost at its peak, in bodies."""
BODIES_AT_ONCE = 4
"""Large bodies one worker receives and holds at once."""
SUPERVISOR = 64 * MiB
"""The parent `extproc serve` that restarts several workers."""
CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


def processor_memory(gateway: Gateway) -> int:
    """Bytes the processor (all its workers) needs at most for this configuration."""
    body = gateway.listen.max_request_body
    worker = WORKER_AT_REST + round(BODIES_AT_ONCE * BODY_PEAK * body)
    workers = gateway.processor.workers
    return workers * worker + (SUPERVISOR if workers > 1 else 0)


def container_limit(path: Path = CGROUP_LIMIT) -> int | None:
    """The memory limit of the container this runs in (cgroup v2); None when unlimited or
    unknown."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
