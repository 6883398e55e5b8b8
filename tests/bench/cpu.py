"""CPU time per process role, read from /proc: a cost measure that machine stalls do not inflate."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
ROLES = ("envoy", "processor", "mock", "redis", "peer")


def role_of(argv: list[str]) -> str | None:
    if argv and Path(argv[0]).name == "envoy":
        return "envoy"
    if "serve" in argv:
        return "processor"
    if "mock-provider" in argv:
        return "mock"
    if argv and Path(argv[0]).name.startswith("redis-server"):
        return "redis"
    if (argv and Path(argv[0]).name == "node") or any(Path(a).name == "litellm" for a in argv[:2]):
        return "peer"  # the gateways `make bench-peers` compares with
    return None


def descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split()
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
