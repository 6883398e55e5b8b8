"""What a call is charged, as the client sees it (headers, or its final usage event), as
Envoy sees it (dynamic metadata) and as the ledger records it."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from extproc import headers as names
from extproc.quota.limits import MICRO_USD_PER_USD, Price
from extproc.sse import EventParser
from extproc.translators.ir import JsonObject
from extproc.translators.schema import FinalUsage
from extproc.usage import Usage


@dataclass(frozen=True, slots=True)
class Charged:
    """The usage a call is charged for, and its price (micro-dollars, rounded as money limits
    count it; None when the model has no price)."""

    usage: Usage
    micro_usd: int | None

    @classmethod
    def of(cls, usage: Usage, price: Price | None) -> Charged:
        return cls(usage, None if price is None else round(price.micro_usd(usage)))

    @property
    def usd(self) -> float | None:
        return None if self.micro_usd is None else self.micro_usd / MICRO_USD_PER_USD

    def headers(self) -> list[tuple[str, str]]:
        """The answer's headers that tell the client (see `names.COST_HEADERS`)."""
        usage = self.usage
        figures = [
            (names.INPUT_TOKENS, usage.input_tokens),
            (names.OUTPUT_TOKENS, usage.output_tokens),
            (names.CACHED_INPUT_TOKENS, usage.cached_input_tokens),
            (names.CACHE_WRITE_TOKENS, usage.cache_write_tokens),
            (names.REASONING_TOKENS, usage.reasoning_tokens),
        ]
        out = [(name, str(value)) for name, value in figures]
        if self.micro_usd is not None:
            out.append((names.COST_USD, f"{self.micro_usd / MICRO_USD_PER_USD:.6f}"))
        return out

    def metadata(self) -> dict[str, float]:
        """Envoy's dynamic metadata, under `SHARED_METADATA`
        (`%DYNAMIC_METADATA(extproc:cost_usd)%`)."""
        usage = self.usage
        values: dict[str, float] = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        }
        if self.micro_usd is not None:
            values["cost_usd"] = self.micro_usd / MICRO_USD_PER_USD
        return values


def with_cost(events: bytes, final_usage: FinalUsage, charged: Charged) -> tuple[bytes, bool]:
    """`events` (whole server-sent events in a client's schema) with the cost written into
    the final usage event's usage (`cost_usd`), and whether that event was among them."""
    if b"usage" not in events or charged.micro_usd is None:
        return events, False
    out: list[bytes] = []
    found = False
    for block in EventParser(len(events) + 1).feed(events, end=True):
        event = block.event
        data = _object(event.data) if event is not None and not found else None
        usage = final_usage(event.name, data) if event is not None and data else None
        if usage is None:
            out.append(block.raw)
            continue
        found = True
        usage["cost_usd"] = charged.usd
        name = b"event: " + event.name.encode() + b"\n" if event and event.name else b""
        out.append(name + b"data: " + orjson.dumps(data) + b"\n\n")
    return b"".join(out), found


def _object(data: str) -> JsonObject | None:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
