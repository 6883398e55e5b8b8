"""CPU time per process role, read from /proc: a cost measure that machine stalls do not inflate."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from extproc.run import MOCK_MODULE

TICKS = os.sysconf("SC_CLK_TCK")

ROLES = ("envoy", "processor", "upstream", "mock", "redis", "peer")


def role_of(argv: list[str]) -> str | None:
    program = Path(argv[0]).name if argv else ""
    roles = {
        "envoy": program == "envoy",
        "processor": "serve" in argv,
        "mock": MOCK_MODULE in argv,
        "redis": program.startswith("redis-server"),
        "upstream": program.startswith("nginx"),  # the static provider of throughput rows
        # the gateways `make bench-peers` compares with
        "peer": program == "node" or any(Path(a).name == "litellm" for a in argv[:2]),
    }
    return next((role for role, matches in roles.items() if matches), None)


def descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        for child in children:
            found.extend(descendants(int(child)))
    return found


def processes(roots: list[int]) -> Iterator[tuple[int, str]]:
    """(pid, role) of every process with a role among the roots' process trees."""
    for root in roots:
        for pid in descendants(root):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            except FileNotFoundError:
                continue  # ended meanwhile
            role = role_of(argv)
            if role is not None:
                yield pid, role


def cpu_by_role(roots: list[int]) -> dict[str, float]:
    """Seconds of CPU used so far by each role among the roots' process trees."""
    used = dict.fromkeys(ROLES, 0.0)
    for pid, role in processes(roots):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        used[role] += (int(fields[11]) + int(fields[12])) / TICKS
    return used
