"""Limits, windows and the ledger over the memory store, with an injected clock."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.config import ConfigError, Gateway, parse_gateway
from extproc.pipeline.ratelimit_headers import go_duration, ratelimit_headers
from extproc.pipeline.refusals import refused
from extproc.quota.ledger import Ledger, Reservation
from extproc.quota.memory_store import MemoryStore
from extproc.quota.standing import QuotaRefused
from extproc.quota.windows import calendar_window, fixed_window
from extproc.usage import Usage

BASE = """
providers: {p: {kind: openai, base_url: "http://127.0.0.1:1"}}
models:
  m: {provider: p, model: up}
  cheap: {provider: p, model: up-mini}
prices:
  m: {input_per_million: 2, output_per_million: 10}
  cheap: {input_per_million: 1, output_per_million: 1}
"""


DIGEST = "a" * 64


def gateway_with(keys: str) -> Gateway:
    return parse_gateway(BASE + keys, source=Path("q.yaml"), environ={})


def one_key(limits: str, models: str = "[m]") -> str:
    return f'keys:\n  - {{id: k, sha256: "{DIGEST}", models: {models}, limits: {limits}}}\n'


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def headers_of(reservation: Reservation) -> dict[str, str]:
    return dict(ratelimit_headers(reservation.standings))


def ledger_for(clock: Clock) -> Ledger:
    return Ledger(MemoryStore(clock), lease=600, clock=clock)


async def reserve(ledger: Ledger, gateway: Gateway, usage: Usage, alias: str = "m") -> Reservation:
    principal = next(iter(gateway.principals.values()))
    route = gateway.models[alias]
    return await ledger.reserve(
        principal.limits, alias=alias, price=route.price, estimate=usage, policy="deny"
    )


def test_fixed_windows_align_to_the_epoch() -> None:
    window = fixed_window(60, "1m")
    assert window.bounds(at("2026-03-01T10:00:59+00:00")) == (
        at("2026-03-01T10:00:00+00:00"),
        at("2026-03-01T10:01:00+00:00"),
    )


def test_calendar_month_follows_its_time_zone() -> None:
    window = calendar_window("month", ZoneInfo("Europe/Berlin"))
    # 23:30 UTC on 31 January is already February in Berlin.
    start, end = window.bounds(at("2026-01-31T23:30:00+00:00"))
    assert start == at("2026-02-01T00:00:00+01:00")
    assert end == at("2026-03-01T00:00:00+01:00")
    # The March window starts at midnight standard time and ends at midnight summer time.
    start, end = window.bounds(at("2026-03-15T12:00:00+00:00"))
    assert end - start == 31 * 86400 - 3600


async def test_month_budget_rolls_over_at_midnight_in_its_zone() -> None:
    gateway = gateway_with(one_key("[{usd: 0.001, per: month, tz: Europe/Berlin}]"))
    clock = Clock(at("2026-01-31T22:59:00+00:00"))  # 23:59 in Berlin
    ledger = ledger_for(clock)
    spend = Usage(input_tokens=0, output_tokens=100)  # 100 x 10 USD/M = 0.001 USD
    await reserve(ledger, gateway, spend)
    with pytest.raises(QuotaRefused) as refusal:
        await reserve(ledger, gateway, Usage(0, 1))
    assert refusal.value.budget and refusal.value.retry_after == 60
    error = refused(refusal.value)
    assert (error.status, error.code) == (429, "insufficient_quota")
    assert dict(error.headers)["retry-after"] == "60"
    clock.now = at("2026-01-31T23:00:00+00:00")  # midnight in Berlin: a new month
    await reserve(ledger, gateway, spend)


async def test_settling_charges_the_real_usage_and_refunds_the_rest() -> None:
    gateway = gateway_with(
        one_key("[{tokens: 1000, per: 1h}, {concurrent: 1}, {requests: 10, per: 1h}]")
    )
    clock = Clock(at("2026-05-01T12:00:00+00:00"))
    ledger = ledger_for(clock)
    first = await reserve(ledger, gateway, Usage(100, 800))
    assert headers_of(first)["x-ratelimit-remaining-tokens"] == "100"
    with pytest.raises(QuotaRefused):  # the one concurrent slot is taken
        await reserve(ledger, gateway, Usage(1, 1))
    await first.settle(Usage(100, 50))
    second = await reserve(ledger, gateway, Usage(100, 700))
    assert headers_of(second)["x-ratelimit-remaining-tokens"] == str(1000 - 150 - 800)
    assert headers_of(second)["x-ratelimit-remaining-requests"] == "8"
    await second.settle(None)  # did not run: everything back, the request too
    third = await reserve(ledger, gateway, Usage(0, 850))
    assert headers_of(third)["x-ratelimit-remaining-tokens"] == "0"
    assert headers_of(third)["x-ratelimit-remaining-requests"] == "8"


async def test_refusal_changes_no_counter() -> None:
    gateway = gateway_with(
        one_key("[{requests: 100, per: 1m}, {tokens: 10, per: 1m, model: m}]", "[m, cheap]")
    )
    clock = Clock(at("2026-05-01T12:00:30+00:00"))
    ledger = ledger_for(clock)
    with pytest.raises(QuotaRefused) as refusal:
        await reserve(ledger, gateway, Usage(5, 6))
    error = refused(refusal.value)
    assert (error.status, error.code) == (429, "rate_limit_exceeded")
    headers = dict(error.headers)
    assert headers["retry-after"] == "30"
    assert headers["x-ratelimit-remaining-requests"] == "100"
    assert headers["x-ratelimit-reset-tokens"] == "30s"
    # The model-scoped limit does not apply to another model.
    reservation = await reserve(ledger, gateway, Usage(5, 6), alias="cheap")
    assert headers_of(reservation)["x-ratelimit-remaining-requests"] == "99"


async def test_clamp_lowers_the_output_to_what_is_left() -> None:
    gateway = gateway_with(one_key("[{tokens: 1000, per: 1h, clamp_max_tokens: true}]"))
    ledger = ledger_for(Clock(at("2026-05-01T12:00:00+00:00")))
    await reserve(ledger, gateway, Usage(100, 500))
    clamped = await reserve(ledger, gateway, Usage(100, 500))
    assert clamped.clamped_output == 300
    with pytest.raises(QuotaRefused):  # nothing left to clamp to
        await reserve(ledger, gateway, Usage(100, 500))


async def test_shadow_limits_count_and_report_but_never_refuse(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = gateway_with(one_key("[{requests: 1, per: 1h, mode: shadow}]"))
    ledger = ledger_for(Clock(at("2026-05-01T12:00:00+00:00")))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            await reserve(ledger, gateway, Usage(1, 1))
    reports = [r.getMessage() for r in caplog.records if "shadow limit exceeded" in r.message]
    assert reports == [
        "shadow limit exceeded, request served: key:k 1 requests per 1h (now at 2)",
        "shadow limit exceeded, request served: key:k 1 requests per 1h (now at 3)",
    ]


async def test_team_limits_are_shared_by_the_team_keys() -> None:
    gateway = gateway_with(f"""
keys:
  - {{id: a, sha256: "{DIGEST}", team: t, models: [m]}}
  - {{id: b, sha256: "{"b" * 64}", team: t, models: [m]}}
teams:
  t: {{limits: [{{requests: 2, per: 1d}}]}}
""")
    ledger = ledger_for(Clock(at("2026-05-01T12:00:00+00:00")))
    a, b = gateway.principals.values()
    for principal in (a, b):
        await ledger.reserve(
            principal.limits, alias="m", price=None, estimate=Usage(1, 1), policy="deny"
        )
    with pytest.raises(QuotaRefused):
        await ledger.reserve(a.limits, alias="m", price=None, estimate=Usage(1, 1), policy="deny")


@pytest.mark.parametrize(
    ("limits", "path", "message"),
    [
        ("[{usd: 5, per: day}]", "keys.0.limits.0.usd", "no price for other"),
        ("[{tokens: 5}]", "keys.0.limits.0", "needs per"),
        ("[{tokens: 5, requests: 2, per: 1m}]", "keys.0.limits.0", "exactly one of"),
        ("[{concurrent: 2, per: 1m}]", "keys.0.limits.0", "no window"),
        ("[{tokens: 5, per: month, tz: Mars/Olympus}]", "keys.0.limits.0.tz", "unknown time zone"),
        ("[{tokens: 5, per: fortnight}]", "keys.0.limits.0.per", "duration"),
        ("[{tokens: 5, per: 1m, model: nope}]", "keys.0.limits.0.model", "unknown model"),
        ("[{requests: 5, per: 1m, clamp_max_tokens: true}]", "keys.0.limits.0", "clamp_max"),
        ("[{tokens: 5, per: 1m}, {tokens: 9, per: 60s}]", "keys.0.limits.1", "twice"),
    ],
)
def test_limit_mistakes_are_reported_with_their_path(limits: str, path: str, message: str) -> None:
    text = BASE.replace("models:\n", "models:\n  other: {provider: p, model: x}\n")
    with pytest.raises(ConfigError) as error:
        parse_gateway(text + one_key(limits, '["*"]'), source=Path("q.yaml"), environ={})
    assert any(p == path and message in m for p, m in error.value.problems), error.value.problems


def test_memory_store_with_several_workers_is_refused_when_limits_exist() -> None:
    text = BASE + "processor: {workers: 2}\n" + one_key("[{requests: 1, per: 1m}]")
    with pytest.raises(ConfigError, match="redis"):
        parse_gateway(text, source=Path("q.yaml"), environ={})


def test_redis_password_must_be_a_reference() -> None:
    with pytest.raises(ConfigError, match=r"quota\.password"):
        parse_gateway(
            BASE + "quota: {store: 'redis://:hunter2@127.0.0.1:6379/0'}\n",
            source=Path("q.yaml"),
            environ={},
        )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (1, "1s"), (1.5, "1.5s"), (360, "6m0s"), (3725, "1h2m5s")],
)
def test_reset_headers_use_openai_duration_format(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@given(st.lists(st.floats(1_790_000_000, 1_830_000_000), min_size=1, max_size=30))
def test_a_calendar_window_remembering_its_last_bounds_answers_as_a_fresh_one(
    instants: list[float],
) -> None:
    """Over daylight-saving changes and month ends, in any order of asking."""
    for calendar in ("day", "month"):
        remembering = calendar_window(calendar, ZoneInfo("Europe/Berlin"))
        for instant in instants:
            fresh = calendar_window(calendar, ZoneInfo("Europe/Berlin"))
            assert remembering.bounds(instant) == fresh.bounds(instant)
            start, end = remembering.bounds(instant)
            assert start <= instant < end
