"""What `extproc usage` shows: every configured limit, what its current window used, what is
left, and when it resets. Read from the store, never from the request path."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from extproc.config import Gateway
from extproc.counters import client_tls, read_remote
from extproc.quota.configured import open_store
from extproc.quota.limits import MICRO_USD_PER_USD, Limit
from extproc.tables import aligned

PROCESSOR_TIMEOUT = 5.0

ReadCounters = Callable[[Sequence[str]], Awaitable[list[int]]]


@dataclass(frozen=True, slots=True)
class Row:
    limit: Limit
    used: int
    resets_at: float | None

    def as_dict(self) -> dict[str, Any]:
        scale = MICRO_USD_PER_USD if self.limit.metric == "usd" else 1
        reset = None
        if self.resets_at is not None:
            reset = datetime.datetime.fromtimestamp(self.resets_at, datetime.UTC).isoformat()
        return {
            "scope": self.limit.scope,
            "metric": self.limit.metric,
            "per": self.limit.window.label if self.limit.window else None,
            "model": self.limit.model,
            "tool": self.limit.tool,
            "mode": "shadow" if self.limit.shadow else "enforce",
            "limit": self.limit.amount / scale,
            "used": self.used / scale,
            "remaining": max(0, self.limit.amount - self.used) / scale,
            "resets_at": reset,
        }


def configured_limits(gateway: Gateway, subject: Mapping[str, str] | None = None) -> list[Limit]:
    """Each key's, team's and identity rule's limits once (a team's appear under every key of
    the team); with `subject` (a claim and its value, `{"sub": "alice"}`), also the rules'
    per-subject limits of that caller."""
    limits = [limit for principal in gateway.principals.values() for limit in principal.limits]
    identity = gateway.identity
    limits += [limit for team in identity.team_limits.values() for limit in team]
    for rule in identity.rules:
        limits += rule.limits
        if subject is not None and {claim for claim, _ in rule.subject_limits} <= set(subject):
            limits += rule.limits_of(subject) or ()
    seen: dict[str, Limit] = {}
    for limit in limits:
        seen.setdefault(limit.counter, limit)
    return sorted(seen.values(), key=lambda limit: (limit.scope, limit.counter))


async def current_usage(
    gateway: Gateway,
    *,
    processor: str | None,
    now: float,
    subject: Mapping[str, str] | None = None,
) -> list[Row]:
    """Rows read from the Redis store, or for the memory store from the processor holding it
    (at `processor`, default the configured address); raises StoreUnavailable."""
    read = functools.partial(read_counters, gateway, processor=processor)
    return await usage_rows(gateway, read, now, subject)


async def read_counters(
    gateway: Gateway, counters: Sequence[str], *, processor: str | None
) -> list[int]:
    """The counters' values from the Redis store, or for the memory store from the processor
    holding it (at `processor`, default the configured address); raises StoreUnavailable."""
    if gateway.quota.store == "memory":
        address = processor or gateway.processor.worker_addresses()[0]
        tls = client_tls(address, gateway.processor.tls)
        return await read_remote(address, counters, timeout=PROCESSOR_TIMEOUT, tls=tls)
    settings = gateway.quota
    store = open_store(
        settings.store, password=settings.revealed_password, timeout=settings.timeout
    )
    try:
        return await store.read(counters)
    finally:
        await store.close()


async def usage_rows(
    gateway: Gateway, read: ReadCounters, now: float, subject: Mapping[str, str] | None = None
) -> list[Row]:
    limits = configured_limits(gateway, subject)
    counters = [limit.counter_at(now) for limit in limits]
    values = await read([name for name, _ in counters])
    return [
        Row(limit, value, end if limit.window is not None else None)
        for limit, value, (_, end) in zip(limits, values, counters, strict=True)
    ]


def format_table(rows: Sequence[Row]) -> str:
    header = ("SCOPE", "LIMIT", "PER", "MODEL/TOOL", "MODE", "USED", "REMAINING", "RESETS (UTC)")
    lines = [header]
    for row in rows:
        data = row.as_dict()
        lines.append(
            (
                data["scope"],
                f"{data['limit']:g} {data['metric']}",
                data["per"] or "-",
                data["model"] or data["tool"] or "*",
                data["mode"],
                f"{data['used']:g}",
                f"{data['remaining']:g}",
                (data["resets_at"] or "-")[:19],
            )
        )
    return aligned(lines)
