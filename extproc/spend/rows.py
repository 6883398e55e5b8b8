"""One settled call, as the ledger records it."""

from __future__ import annotations

import uuid
from dataclasses import astuple, dataclass, fields
from typing import Any

import orjson

from extproc.quota.limits import MICRO_USD_PER_USD
from extproc.telemetry.record import RequestRecord


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

    def counter_names(self) -> list[str]:
        names = orjson.loads(self.counters) if self.counters else []
        return [name for name in names if isinstance(name, str)]

    @property
    def cost_usd(self) -> float | None:
        micro = self.cost_micro_usd
        return None if micro is None else micro / MICRO_USD_PER_USD

    def line(self) -> bytes:
        """The row as one journal line."""
        return orjson.dumps(dict(zip(COLUMNS, astuple(self), strict=True))) + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> SpendRow | None:
        """None for a line that is not a whole row (the end of a journal cut mid-write)."""
        try:
            values = orjson.loads(line)
            return cls(**{name: values[name] for name in COLUMNS})
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None

    def values(self) -> tuple[Any, ...]:
        return astuple(self)


COLUMNS = tuple(field.name for field in fields(SpendRow))


def row_of(record: RequestRecord) -> SpendRow | None:
    """The ledger's row for a request: model calls that went as far as their quota (refused
    calls included, at zero); None for everything else."""
    if record.quota is None or record.operation in (None, "mcp"):
        return None
    usage = record.usage
    micro = None if record.cost_usd is None else round(record.cost_usd * MICRO_USD_PER_USD)
    return SpendRow(
        call_id=uuid.uuid4().hex,
        time=record.reserved_at or record.started_ns / 1e9,
        request_id=record.request_id,
        key_id=record.key_id,
        team=record.team,
        subject=record.subject,
        alias=record.alias,
        provider=record.provider,
        model=record.upstream_model,
        operation=record.operation,
        stream=record.stream,
        charged=usage is not None,
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        cached_input_tokens=usage.cached_input_tokens if usage else 0,
        cache_write_tokens=usage.cache_write_tokens if usage else 0,
        reasoning_tokens=usage.reasoning_tokens if usage else 0,
        cost_micro_usd=micro if usage is not None else 0,
        status=record.status,
        attempts=record.attempts,
        counters=orjson.dumps(record.counters).decode(),
    )
