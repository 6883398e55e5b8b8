"""One settled call, as the ledger records it: on the request path a plain list of values in
`COLUMNS` order (one JSON array a journal line), read back as a `SpendRow`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import orjson

from extproc.quota.limits import MICRO_USD_PER_USD
from extproc.telemetry.record import RequestRecord

Values = list[Any]
"""A row's values in `COLUMNS` order."""


@dataclass(frozen=True, slots=True)
class SpendRow:
    call_id: str
    """The gateway's own id for the call: what makes writing a row twice harmless."""
    time: float
    """When its quota was reserved (Unix time): the window it counts in."""
    request_id: str | None
    """Envoy's `x-request-id` (as in both access logs)."""
    key_id: str | None
    team: str | None
    subject: str | None
    alias: str | None
    provider: str | None
    model: str | None
    operation: str | None
    stream: bool
    charged: bool
    """False: the call was refunded (it did not run, or failed); its figures are zero."""
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_micro_usd: int | None
    """None when the model has no price."""
    status: int | None
    attempts: int | None
    counters: str
    """The quota counters it was charged to, as a JSON array (see `extproc spend
    reconcile`)."""

    @classmethod
    def of(cls, values: Values) -> SpendRow:
        row = dict(zip(COLUMNS, values, strict=True))
        return cls(**row | {"stream": bool(row["stream"]), "charged": bool(row["charged"])})

    def counter_names(self) -> list[str]:
        names = orjson.loads(self.counters) if self.counters else []
        return [name for name in names if isinstance(name, str)]


COLUMNS = tuple(field.name for field in fields(SpendRow))


def journal_line(values: Values) -> bytes:
    return orjson.dumps(values) + b"\n"


def read_line(line: bytes) -> Values | None:
    """None for a line that is not a whole row (the end of a journal cut mid-write)."""
    try:
        values = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return values if isinstance(values, list) and len(values) == len(COLUMNS) else None


def row_values(record: RequestRecord, call_id: str) -> Values | None:
    """The ledger's row for a request: model calls that went as far as their quota (refused
    calls included, at zero); None for everything else."""
    if record.quota is None or record.operation in (None, "mcp"):
        return None
    usage = record.usage
    cost = record.cost_usd
    micro = None if cost is None else round(cost * MICRO_USD_PER_USD)
    return [
        call_id,
        record.reserved_at or record.started_ns / 1e9,
        record.request_id,
        record.key_id,
        record.team,
        record.subject,
        record.alias,
        record.provider,
        record.upstream_model,
        record.operation,
        record.stream,
        usage is not None,
        usage.input_tokens if usage else 0,
        usage.output_tokens if usage else 0,
        usage.cached_input_tokens if usage else 0,
        usage.cache_write_tokens if usage else 0,
        usage.reasoning_tokens if usage else 0,
        micro if usage is not None else 0,
        record.status,
        record.attempts,
        orjson.dumps(record.counters).decode(),
    ]
