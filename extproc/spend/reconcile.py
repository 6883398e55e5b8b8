"""`extproc spend reconcile`: for each limit's current window, what the quota counter stands
at beside what the ledger's rows add up to for it. Each row names the counters its call was
charged to, so the sums need no guessing of scopes or windows.

Calls in flight (reserved, not settled) and rows still in a journal count on one side only:
reconcile a quiet gateway, or expect those differences."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from extproc.quota.limits import MICRO_USD_PER_USD, Limit
from extproc.spend.rows import SpendRow
from extproc.tables import aligned

RECONCILED = ("requests", "tokens", "input_tokens", "output_tokens", "usd")
"""The metrics the ledger's figures make (concurrency and MCP tool calls are not calls it
records)."""
SLACK = 60.0
"""Seconds before a window's start that rows are read from (a call reserved in the window may
have started just before it)."""


@dataclass(frozen=True, slots=True)
class Standing:
    limit: Limit
    counter: str
    window_start: float
    counted: int
    """The quota counter's value."""
    ledger: int
    """The ledger's sum for the same counter, in the same unit."""

    @property
    def agrees(self) -> bool:
        return self.counted == self.ledger

    def as_dict(self) -> dict[str, Any]:
        scale = MICRO_USD_PER_USD if self.limit.metric == "usd" else 1
        return {
            "scope": self.limit.scope,
            "metric": self.limit.metric,
            "per": self.limit.window.label if self.limit.window else None,
            "model": self.limit.model,
            "counter": self.counted / scale,
            "ledger": self.ledger / scale,
            "difference": (self.counted - self.ledger) / scale,
            "agrees": self.agrees,
        }


def reconciled_limits(limits: Iterable[Limit]) -> list[Limit]:
    return [
        limit
        for limit in limits
        if limit.window is not None and limit.metric in RECONCILED and not limit.on_tools
    ]


def standings(
    limits: Sequence[Limit],
    counted: Sequence[int],
    rows: Iterable[SpendRow],
    now: float,
) -> list[Standing]:
    """Each limit's counter value beside the ledger's sum for that counter."""
    windows = []
    for limit in limits:
        assert limit.window is not None
        counter, _ = limit.counter_at(now)
        windows.append((limit, counter, limit.window.bounds(now)[0]))
    wanted = {counter: limit for limit, counter, _ in windows}
    sums = dict.fromkeys(wanted, 0)
    for row in rows:
        if not row.charged:
            continue  # refunded: nothing stayed on any counter
        for counter in row.counter_names():
            if counter in wanted:
                sums[counter] += _amount(wanted[counter], row)
    return [
        Standing(limit, counter, start, value, sums[counter])
        for (limit, counter, start), value in zip(windows, counted, strict=True)
    ]


def earliest(limits: Sequence[Limit], now: float) -> float:
    """From when rows are needed for these limits' current windows."""
    starts = [limit.window.bounds(now)[0] for limit in limits if limit.window is not None]
    return min(starts, default=now) - SLACK


def _amount(limit: Limit, row: SpendRow) -> int:
    metric = limit.metric
    if metric == "requests":
        return 1
    if metric == "tokens":
        return row.input_tokens + row.output_tokens
    if metric == "input_tokens":
        return row.input_tokens
    if metric == "output_tokens":
        return row.output_tokens
    return row.cost_micro_usd or 0


def format_table(lines: Sequence[Standing]) -> str:
    header = ("SCOPE", "LIMIT", "PER", "MODEL", "COUNTER", "LEDGER", "DIFFERENCE", "")
    table = [header]
    for line in lines:
        data = line.as_dict()
        table.append(
            (
                data["scope"],
                data["metric"],
                data["per"] or "-",
                data["model"] or "*",
                _figure(data["counter"]),
                _figure(data["ledger"]),
                _figure(data["difference"]),
                "ok" if line.agrees else "DIFFERS",
            )
        )
    return aligned(table)


def _figure(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
