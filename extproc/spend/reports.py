"""What `extproc spend` prints: the ledger's totals grouped by team, key, model, provider,
alias or day, as a table, CSV or JSON lines."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Sequence
from typing import Any, Literal

import orjson

from extproc.config.units import parse_duration
from extproc.quota.limits import MICRO_USD_PER_USD
from extproc.spend.stores import Grouping, LedgerStore
from extproc.tables import aligned

Format = Literal["table", "csv", "json"]
FIELDS = (
    "calls",
    "charged_calls",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
)


def spend_report(
    store: LedgerStore, by: Grouping, since: float, until: float
) -> list[dict[str, Any]]:
    """One entry per group, dearest first."""
    entries = []
    for group, *figures in store.report(by, since, until):
        entry: dict[str, Any] = {by: group}
        entry |= {name: int(value or 0) for name, value in zip(FIELDS[:-1], figures, strict=False)}
        micro = figures[-1]
        entry["cost_usd"] = None if micro is None else int(micro) / MICRO_USD_PER_USD
        entries.append(entry)
    return entries


def render(entries: Sequence[dict[str, Any]], by: Grouping, form: Format) -> str:
    columns = (by, *FIELDS)
    if form == "json":
        return "\n".join(orjson.dumps(entry).decode() for entry in entries)
    if form == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(entry[name]) for name in columns] for entry in entries)
        return out.getvalue().rstrip("\n")
    lines = [tuple(name.upper() for name in columns)]
    lines += [tuple(_cell(entry[name], table=True) for name in columns) for entry in entries]
    return aligned(lines)


def _cell(value: Any, *, table: bool = False) -> str:
    if value is None:
        return "-" if table else ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def parse_instant(text: str) -> float:
    """`2026-12-01`, `2026-12-01T12:00:00Z` (UTC unless an offset is given), or a duration
    back from now: `7d`, `24h`."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        try:
            return datetime.datetime.now(datetime.UTC).timestamp() - parse_duration(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is neither a date (2026-12-01), an instant nor a duration (7d)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()
