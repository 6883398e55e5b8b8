"""`extproc usage`: the configured limits, each once, with what their windows used."""

from __future__ import annotations

import datetime
from pathlib import Path

from extproc.config import Gateway, parse_gateway
from extproc.quota.ledger import Ledger
from extproc.quota.memory_store import MemoryStore
from extproc.usage import Usage
from extproc.usage_report import configured_limits, format_table, usage_rows

NOON = datetime.datetime(2026, 5, 1, 12, 0, 30, tzinfo=datetime.UTC).timestamp()
CONFIG = f"""
providers: {{p: {{kind: openai, base_url: "http://127.0.0.1:1"}}}}
models: {{m: {{provider: p, model: up}}}}
prices: {{m: {{input_per_million: 1000, output_per_million: 1000}}}}
keys:
  - {{id: a, sha256: "{"a" * 64}", team: t, models: [m], limits: [{{concurrent: 2}}]}}
  - {{id: b, sha256: "{"b" * 64}", team: t, models: [m]}}
teams:
  t: {{limits: [{{requests: 10, per: 1m}}, {{usd: 5, per: 1d, mode: shadow, model: m}}]}}
"""


def gateway() -> Gateway:
    return parse_gateway(CONFIG, source=Path("u.yaml"), environ={})


def test_a_team_limit_is_listed_once_whatever_number_of_keys_share_it() -> None:
    limits = configured_limits(gateway())

    assert [(limit.scope, limit.metric) for limit in limits] == [
        ("key:a", "concurrent"),
        ("team:t", "requests"),
        ("team:t", "usd"),
    ]


async def test_rows_show_what_each_window_used_and_when_it_resets() -> None:
    configured = gateway()
    store = MemoryStore(lambda: NOON)
    ledger = Ledger(store, lease=600, clock=lambda: NOON)
    principal = configured.principals["a" * 64]
    price = configured.models["m"].price
    await ledger.reserve(
        principal.limits, alias="m", price=price, estimate=Usage(1000, 1000), policy="deny"
    )

    rows = {row.limit.metric: row for row in await usage_rows(configured, store.read, NOON)}

    assert rows["concurrent"].used == 1 and rows["concurrent"].resets_at is None
    assert rows["requests"].used == 1
    assert rows["requests"].resets_at == NOON - 30 + 60  # the end of this minute
    usd = rows["usd"].as_dict()
    assert (usd["used"], usd["limit"], usd["mode"], usd["model"]) == (2.0, 5.0, "shadow", "m")
    assert usd["resets_at"] == "2026-05-02T00:00:00+00:00"


async def test_the_table_has_a_line_per_limit_with_dashes_for_what_does_not_apply() -> None:
    configured = gateway()
    store = MemoryStore(lambda: NOON)

    table = format_table(await usage_rows(configured, store.read, NOON)).splitlines()

    assert table[0].split() == [
        "SCOPE", "LIMIT", "PER", "MODEL/TOOL", "MODE", "USED", "REMAINING", "RESETS", "(UTC)",
    ]  # fmt: skip
    assert table[1].split() == ["key:a", "2", "concurrent", "-", "*", "enforce", "0", "2", "-"]
    assert table[2].split() == [
        "team:t", "10", "requests", "1m", "*", "enforce", "0", "10", "2026-05-01T12:01:00",
    ]  # fmt: skip
    assert table[3].split()[:6] == ["team:t", "5", "usd", "1d", "m", "shadow"]
