"""What calls cost, where it is told: to the client (headers, a stream's final usage event),
to Envoy (dynamic metadata in its own access log), and to the spend ledger (SQLite or
PostgreSQL), with reports, reconciliation against the quota counters and budget alerts.
Through a real Envoy, two processor workers, redis-server and the mock provider."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import psycopg
import pytest

from extproc.spend.rows import SpendRow
from tests.conftest import provider_document, write_provider_keys
from tests.harness import (
    HTTP,
    MockProvider,
    RunningGateway,
    access_log_lines,
    extproc,
    free_port,
    ledger_rows,
    redis_server,
    running_gateway,
    sha256,
    wait_until,
    write_config,
)
from tests.postgres import postgres_server

pytestmark = [pytest.mark.envoy, pytest.mark.redis, pytest.mark.postgresql]

SEEING_KEY = "sk-gw-spend-seeing-0123456789"
PLAIN_KEY = "sk-gw-spend-plain-0123456789"
STINGY_KEY = "sk-gw-spend-stingy-0123456789"
PRICES = {
    "chat": {
        "input_per_million": 0.15,
        "output_per_million": 0.6,
        "cached_input_per_million": 0.075,
    },
    "claude": {
        "input_per_million": 3.0,
        "output_per_million": 15.0,
        "cached_input_per_million": 0.3,
        "cache_write_per_million": 3.75,
    },
}
FALLBACK_PRICES = (
    {"input_per_million": 5.0, "output_per_million": 8.0},
    {"input_per_million": 3.0, "output_per_million": 15.0},
)
HI = [{"role": "user", "content": "Hi"}]


def spend_document(
    mock: MockProvider, directory: Path, *, ledger: str, redis: str, alerts: str | None = None
) -> dict[str, Any]:
    secrets = directory / "secrets"
    secrets.mkdir(exist_ok=True)
    write_provider_keys(secrets)
    providers = provider_document(mock.url, secrets)
    limits = [
        {"requests": 100_000, "per": "1d"},
        {"tokens": 100_000_000, "per": "1d"},
        {"usd": 1000, "per": "1d"},
        {"output_tokens": 10_000_000, "per": "1h", "model": "chat"},
    ]
    document: dict[str, Any] = {
        "processor": {"message_timeout": "10s", "workers": 2},
        "providers": {name: providers[name] for name in ("openai", "anthropic")},
        "models": {
            "chat": {"provider": "openai", "model": "gpt-4o-mini"},
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
            "smart": {
                "targets": [
                    {"provider": "openai", "model": "gpt-4o", "price": FALLBACK_PRICES[0]},
                    {
                        "provider": "anthropic",
                        "model": "claude-sonnet-4-5",
                        "priority": 1,
                        "price": FALLBACK_PRICES[1],
                    },
                ]
            },
        },
        "prices": PRICES,
        "keys": [
            {
                "id": "seeing",
                "sha256": sha256(SEEING_KEY),
                "team": "lab",
                "models": ["*"],
                "limits": limits,
                "expose_cost": True,
            },
            {"id": "plain", "sha256": sha256(PLAIN_KEY), "team": "lab", "models": ["*"]},
            {
                "id": "stingy",
                "sha256": sha256(STINGY_KEY),
                "models": ["*"],
                "limits": [{"requests": 5, "per": "1d"}],
            },
        ],
        "teams": {"lab": {"limits": [{"usd": 1000, "per": "day"}]}},
        "quota": {"store": redis},
        "telemetry": {
            "access_log": str(directory / "access.log"),
            "envoy_access_log": str(directory / "envoy-access.log"),
        },
        "spend": {"ledger": {"store": ledger, "journal": str(directory / "journal")}},
    }
    if alerts is not None:
        document["spend"]["alerts"] = {"url": alerts, "thresholds": [50, 80]}
    return document


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def spend_gateway(
    request: pytest.FixtureRequest, mock: MockProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, Path, str]]:
    """A gateway with two processor workers and Redis quotas, its ledger on SQLite or on a
    PostgreSQL started for it."""
    directory = tmp_path_factory.mktemp(f"spend-{request.param}")
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(redis_server())
        if request.param == "sqlite":
            ledger = f"sqlite:{directory / 'spend.db'}"
        else:
            ledger = stack.enter_context(postgres_server()).url
        document = spend_document(mock, directory, ledger=ledger, redis=redis.url)
        config = write_config(directory, document)
        gateway = stack.enter_context(running_gateway(config, directory / "gateway.log"))
        yield gateway, config, ledger


def logged_calls(config: Path) -> list[dict[str, Any]]:
    """The access log's lines of calls that reached their quota: those the ledger records."""
    lines = [orjson.loads(line) for line in access_log_lines(config)]
    return [line for line in lines if line["quota"] is not None and line["operation"] != "mcp"]


def delete_row(ledger: str, call_id: str) -> None:
    """What an operator's mistake, or a lost write, would leave: a call without its row."""
    statement = "DELETE FROM spend_calls WHERE call_id = "
    if ledger.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(ledger.removeprefix("sqlite:"))) as database:
            database.execute(statement + "?", (call_id,))
            database.commit()
    else:
        with psycopg.connect(ledger) as database:
            database.execute(statement + "%s", (call_id,))


def micro(cost: float | None) -> int | None:
    return None if cost is None else round(cost * 1_000_000)


def expected_micro(price: dict[str, float], usage: dict[str, int]) -> int:
    cached = usage.get("cached", 0)
    written = usage.get("written", 0)
    uncached = usage["input"] - cached - written
    return round(
        uncached * price["input_per_million"]
        + cached * price.get("cached_input_per_million", price["input_per_million"])
        + written * price.get("cache_write_per_million", price["input_per_million"])
        + usage["output"] * price["output_per_million"]
    )


def test_json_answers_carry_the_cost_of_the_price_table_in_each_client_schema(
    spend_gateway: tuple[RunningGateway, Path, str],
) -> None:
    gateway, _, _ = spend_gateway
    client = openai.OpenAI(api_key=SEEING_KEY, base_url=gateway.url + "/v1", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=HI, extra_headers={"x-mock-cached-tokens": "4"}
    )
    answer = raw.parse()
    assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
    cached = answer.usage.prompt_tokens_details.cached_tokens or 0
    assert cached == 4
    usage = {"input": answer.usage.prompt_tokens, "output": answer.usage.completion_tokens}
    cost = expected_micro(PRICES["chat"], usage | {"cached": cached})
    assert raw.headers["x-extproc-cost-usd"] == f"{cost / 1e6:.6f}"
    assert int(raw.headers["x-extproc-input-tokens"]) == usage["input"]
    assert int(raw.headers["x-extproc-output-tokens"]) == usage["output"]
    assert int(raw.headers["x-extproc-cached-input-tokens"]) == 4

    claude = anthropic.Anthropic(api_key=SEEING_KEY, base_url=gateway.url, max_retries=0)
    raw_message = claude.messages.with_raw_response.create(
        model="claude",
        max_tokens=64,
        messages=HI,
        extra_headers={"x-mock-cached-tokens": "3", "x-mock-cache-write-tokens": "2"},
    )
    message = raw_message.parse()
    spent = message.usage
    total_input = (
        spent.input_tokens
        + (spent.cache_read_input_tokens or 0)
        + (spent.cache_creation_input_tokens or 0)
    )
    cost = expected_micro(
        PRICES["claude"],
        {"input": total_input, "output": spent.output_tokens, "cached": 3, "written": 2},
    )
    assert raw_message.headers["x-extproc-cost-usd"] == f"{cost / 1e6:.6f}"
    assert raw_message.headers["x-extproc-cache-write-tokens"] == "2"

    # The Responses API, translated to Anthropic's Messages API.
    response = client.responses.with_raw_response.create(model="claude", input="Hi")
    answered = response.parse().usage
    assert answered is not None
    cost = expected_micro(
        PRICES["claude"], {"input": answered.input_tokens, "output": answered.output_tokens}
    )
    assert response.headers["x-extproc-cost-usd"] == f"{cost / 1e6:.6f}"


def test_a_key_that_does_not_see_costs_gets_no_cost_headers(
    spend_gateway: tuple[RunningGateway, Path, str],
) -> None:
    gateway, _, _ = spend_gateway
    answer = HTTP.post(
        gateway.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {PLAIN_KEY}"},
        json={"model": "chat", "messages": HI},
    )
    assert answer.status_code == 200
    assert not [name for name in answer.headers if name.startswith("x-extproc-cost")]
    assert "x-extproc-input-tokens" not in answer.headers


def test_streams_carry_the_cost_in_their_final_usage_event(
    spend_gateway: tuple[RunningGateway, Path, str],
) -> None:
    gateway, _, _ = spend_gateway
    client = openai.OpenAI(api_key=SEEING_KEY, base_url=gateway.url + "/v1", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="chat",
            messages=HI,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-mock-cached-tokens": "4"},
        )
    )
    final = chunks[-1].usage
    assert final is not None and final.model_extra is not None
    usage = {"input": final.prompt_tokens, "output": final.completion_tokens, "cached": 4}
    assert final.model_extra["cost_usd"] == pytest.approx(
        expected_micro(PRICES["chat"], usage) / 1e6, abs=1e-12
    )
    assert all(chunk.usage is None for chunk in chunks[:-1])

    # An OpenAI client of an Anthropic model: the translated stream's usage chunk.
    chunks = list(
        client.chat.completions.create(
            model="claude", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    final = chunks[-1].usage
    assert final is not None and final.model_extra is not None
    usage = {"input": final.prompt_tokens, "output": final.completion_tokens}
    assert final.model_extra["cost_usd"] == pytest.approx(
        expected_micro(PRICES["claude"], usage) / 1e6, abs=1e-12
    )

    claude = anthropic.Anthropic(api_key=SEEING_KEY, base_url=gateway.url, max_retries=0)
    with claude.messages.stream(model="chat", max_tokens=64, messages=HI) as stream:
        events = list(stream)
    delta = next(event for event in events if event.type == "message_delta")
    spent = delta.usage
    assert spent.model_extra is not None
    usage = {"input": spent.input_tokens or 0, "output": spent.output_tokens}
    assert spent.model_extra["cost_usd"] == pytest.approx(
        expected_micro(PRICES["chat"], usage) / 1e6, abs=1e-12
    )
    start = next(event for event in events if event.type == "message_start")
    assert "cost_usd" not in (start.message.usage.model_extra or {})

    done = None
    for event in client.responses.create(model="chat", input="Hi", stream=True):
        if event.type == "response.completed":
            done = event.response.usage
    assert done is not None and done.model_extra is not None
    usage = {"input": done.input_tokens, "output": done.output_tokens}
    assert done.model_extra["cost_usd"] == pytest.approx(
        expected_micro(PRICES["chat"], usage) / 1e6, abs=1e-12
    )


def test_envoys_access_log_carries_the_settled_cost(
    spend_gateway: tuple[RunningGateway, Path, str],
) -> None:
    gateway, config, _ = spend_gateway
    answers = [
        HTTP.post(
            gateway.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {PLAIN_KEY}"},
            json={"model": "claude", "messages": HI, "stream": stream},
        )
        for stream in (False, True)
    ]
    assert [answer.status_code for answer in answers] == [200, 200]
    envoy_log = config.parent / "envoy-access.log"

    def envoy_lines() -> dict[str, dict[str, Any]]:
        text = envoy_log.read_text() if envoy_log.exists() else ""
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        return {line["request_id"]: line for line in lines}

    own = wait_until(
        lambda: (
            len(logged := logged_calls(config)) >= 2
            and {line["request_id"] for line in logged[-2:]} <= set(seen := envoy_lines())
            and (logged[-2:], seen)
        ),
        "Envoy's access log never had the calls",
    )
    logged, seen = own
    for line in logged:
        envoy = seen[line["request_id"]]
        assert envoy["status"] == 200
        assert envoy["input_tokens"] == line["input_tokens"]
        assert envoy["output_tokens"] == line["output_tokens"]
        assert micro(envoy["cost_usd"]) == micro(line["cost_usd"]) > 0


def mixed_call(gateway: RunningGateway, index: int) -> int:
    """One call of a mixed run, by its index: JSON, streams, translated, fallback, failed and
    refunded, refused by quota, malformed."""
    url = gateway.url
    seeing = {"authorization": f"Bearer {SEEING_KEY}"}
    kind = index % 9
    if kind == 0:
        body = {"model": "chat", "messages": HI}
        response = HTTP.post(
            url + "/v1/chat/completions", headers=seeing | {"x-mock-cached-tokens": "2"}, json=body
        )
    elif kind == 1:
        body = {"model": "chat", "messages": HI, "stream": True}
        body["stream_options"] = {"include_usage": True}
        response = HTTP.post(url + "/v1/chat/completions", headers=seeing, json=body)
    elif kind == 2:
        body = {"model": "chat", "max_tokens": 32, "messages": HI}
        headers = {"x-api-key": SEEING_KEY, "anthropic-version": "2023-06-01"}
        response = HTTP.post(url + "/v1/messages", headers=headers, json=body)
    elif kind == 3:
        body = {"model": "claude", "messages": HI, "stream": True}
        response = HTTP.post(url + "/v1/chat/completions", headers=seeing, json=body)
    elif kind == 4:
        response = HTTP.post(
            url + "/v1/chat/completions",
            headers=seeing | {"x-mock-fail": "gpt-4o=429"},
            json={"model": "smart", "messages": HI},
        )
    elif kind == 5:
        response = HTTP.post(
            url + "/v1/chat/completions",
            headers=seeing | {"x-mock-status": "500"},
            json={"model": "chat", "messages": HI},
        )
    elif kind == 6:
        response = HTTP.post(
            url + "/v1/responses", headers=seeing, json={"model": "claude", "input": "Hi"}
        )
    elif kind == 7:
        response = HTTP.post(
            url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {STINGY_KEY}"},
            json={"model": "chat", "messages": HI},
        )
    else:
        response = HTTP.post(
            url + "/v1/chat/completions",
            headers=seeing | {"content-type": "application/json"},
            content=b'{"model": "chat", "messages": [',
        )
    return response.status_code


def test_ledger_rows_equal_the_access_log_and_reports_and_reconciliation_agree(
    spend_gateway: tuple[RunningGateway, Path, str],
) -> None:
    gateway, config, ledger = spend_gateway
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda index: mixed_call(gateway, index), range(500)))
    assert {200, 400, 429, 500} <= set(statuses)

    def settled() -> tuple[dict[str, dict[str, Any]], list[SpendRow]] | None:
        """Both records once they agree on which calls there were (the ledger ships within
        a second; a call's access-log line follows its row)."""
        calls = {line["request_id"]: line for line in logged_calls(config)}
        rows = ledger_rows(ledger)
        return (calls, rows) if {row.request_id for row in rows} == set(calls) else None

    calls, rows = wait_until(settled, "the ledger and the access log never agreed")
    by_request = {row.request_id: row for row in rows}
    assert len(by_request) == len(rows), "one row per call"
    refunded = refused = 0
    for request_id, line in calls.items():
        row = by_request[request_id]
        assert (row.key_id, row.team, row.alias) == (line["key_id"], line["team"], line["alias"])
        assert (row.provider, row.model) == (line["provider"], line["model"])
        assert (row.status, row.attempts, row.stream) == (
            line["status"],
            line["attempts"],
            line["stream"],
        )
        assert row.charged == (line["input_tokens"] is not None)
        if row.charged:
            assert row.input_tokens == line["input_tokens"]
            assert row.output_tokens == line["output_tokens"]
            assert row.cached_input_tokens == line["cached_input_tokens"]
            assert row.cost_micro_usd == micro(line["cost_usd"])
        else:
            refunded += line["status"] == 500
            refused += line["status"] == 429
            assert row.cost_micro_usd == 0 and row.input_tokens == 0
    assert refunded and refused

    report = subprocess.run(
        extproc("spend", "--config", str(config), "--by", "key", "--format", "json"),
        capture_output=True,
        text=True,
        check=True,
    )
    totals = {entry["key"]: entry for entry in map(json.loads, report.stdout.splitlines())}
    seeing = [line for line in calls.values() if line["key_id"] == "seeing"]
    assert totals["seeing"]["calls"] == len(seeing)
    assert micro(totals["seeing"]["cost_usd"]) == sum(
        micro(line["cost_usd"]) or 0 for line in seeing
    )
    assert totals["seeing"]["output_tokens"] == sum(line["output_tokens"] or 0 for line in seeing)

    reconcile = extproc("spend", "reconcile", "--config", str(config), "--json")
    agreed = subprocess.run(reconcile, capture_output=True, text=True, check=False)
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    standings = [json.loads(line) for line in agreed.stdout.splitlines()]
    assert {(line["scope"], line["metric"]) for line in standings} >= {
        ("key:seeing", "usd"),
        ("key:seeing", "tokens"),
        ("team:lab", "usd"),
    }
    assert all(line["counter"] == line["ledger"] for line in standings)

    charged = next(row for row in rows if row.charged and row.key_id == "seeing")
    delete_row(ledger, charged.call_id)
    differs = subprocess.run(reconcile, capture_output=True, text=True, check=False)
    assert differs.returncode == 1
    assert any(not json.loads(line)["agrees"] for line in differs.stdout.splitlines())


class Webhook:
    """A budget alert receiver: the first delivery of each alert fails with a 500, as a
    receiver having a bad moment would (the gateway must retry)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                seen = [item["threshold_percent"] for item in webhook.refused]
                if body["threshold_percent"] not in seen:
                    webhook.refused.append(body)
                    self.send_response(500)
                else:
                    webhook.received.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/budget"


def test_a_budget_crossing_fires_its_webhook_once_across_two_processors(
    mock: MockProvider, tmp_path: Path
) -> None:
    webhook = Webhook()
    with redis_server() as redis:
        document = spend_document(
            mock,
            tmp_path,
            ledger=f"sqlite:{tmp_path / 'spend.db'}",
            redis=redis.url,
            alerts=webhook.url,
        )
        document["prices"]["chat"] = {"input_per_million": 1000, "output_per_million": 1000}
        document["keys"][1]["limits"] = [{"usd": 1, "per": "1d"}]
        config = write_config(tmp_path, document)
        with running_gateway(config, tmp_path / "gateway.log") as gateway:

            def call(_: int) -> int:
                return HTTP.post(
                    gateway.url + "/v1/chat/completions",
                    headers={"authorization": f"Bearer {PLAIN_KEY}"},
                    json={"model": "chat", "messages": HI, "max_tokens": 20},
                ).status_code

            # Each call costs 21 tokens at $1,000 per million: $0.021; 40 of them cross 80 %.
            with ThreadPoolExecutor(4) as pool:
                assert set(pool.map(call, range(40))) == {200}
            wait_until(
                lambda: len(webhook.received) >= 2,
                "the alerts were not delivered",
                timeout=60,
            )
            # Both processors read the counter after every batch of calls they settled:
            # more calls, then time for two more readings each, and still one alert each.
            with ThreadPoolExecutor(4) as pool:
                assert set(pool.map(call, range(2))) == {200}
            last = len(webhook.received) + len(webhook.refused)
            quiet_since = [time.monotonic()]

            def quiet() -> bool:
                if len(webhook.received) + len(webhook.refused) != last:
                    return False
                return time.monotonic() - quiet_since[0] > 4.0  # past 2 readings and a retry

            wait_until(quiet, "alerts kept coming", timeout=30)
    assert sorted(alert["threshold_percent"] for alert in webhook.received) == [50, 80]
    assert sorted(alert["threshold_percent"] for alert in webhook.refused) == [50, 80]
    alert = next(item for item in webhook.received if item["threshold_percent"] == 80)
    assert alert["limit"]["scope"] == "key:plain" and alert["limit"]["metric"] == "usd"
    assert alert["limit"]["amount"] == 1 and alert["value"] >= 0.8
    assert alert["window"]["start"] < alert["window"]["end"]
