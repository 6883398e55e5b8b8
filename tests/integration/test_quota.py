"""Quotas through a real Envoy, two processor workers and a real redis-server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from extproc.usage import estimate_tokens
from tests.conftest import OPENAI_KEY
from tests.harness import (
    HTTP,
    MockProvider,
    RedisServer,
    RunningGateway,
    assert_openai_error,
    counter_used,
    free_port,
    redis_server,
    running_gateway,
    settles_to,
    sha256,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.envoy, pytest.mark.redis]

KEYS = {
    name: f"sk-gw-quota-{name}-0123456789"
    for name in ("requests", "tokens", "budget", "usd", "shadow", "stream", "clamp")
}
LIMITS: dict[str, list[dict[str, Any]]] = {
    "requests": [{"requests": 5, "per": "1d"}],
    "tokens": [{"tokens": 100_000, "per": "1d"}, {"requests": 1000, "per": "1d"}],
    "budget": [{"tokens": 1000, "per": "1d"}],
    "usd": [{"usd": 0.001, "per": "month", "tz": "Europe/Berlin"}],
    "shadow": [{"tokens": 10, "per": "1d", "mode": "shadow"}],
    "stream": [{"tokens": 100_000, "per": "1d"}, {"concurrent": 2}],
    "clamp": [{"tokens": 1000, "per": "1d", "clamp_max_tokens": True}],
}
PROMPT = [{"role": "user", "content": "Hello"}]
THROTTLED = "gpt-4o-throttled"
"""The first target of the `backed` alias, throttled by one replica's call."""


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def quota_config(
    mock: MockProvider, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    directory = tmp_path_factory.mktemp("quota")
    (directory / "openai").write_text(OPENAI_KEY)
    document = {
        "processor": {"workers": 2, "message_timeout": "10s"},
        "providers": {
            "openai": {"kind": "openai", "base_url": mock.url, "api_key": "${file:openai}"},
            "down": {"kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}"},
        },
        "models": {
            "chat": {"provider": "openai", "model": "gpt-4o-mini"},
            "unreachable": {"provider": "down", "model": "gpt-4o-mini"},
            "backed": {
                "targets": [
                    {"provider": "openai", "model": THROTTLED},
                    {"provider": "openai", "model": "gpt-4o-mini", "priority": 1},
                ]
            },
        },
        "prices": {
            alias: {"input_per_million": 10, "output_per_million": 10}
            for alias in ("chat", "unreachable", "backed")
        },
        "keys": [
            {"id": name, "sha256": sha256(key), "models": ["*"], "limits": LIMITS[name]}
            for name, key in KEYS.items()
        ],
        "quota": {"store": redis.url, "on_store_error": "deny"},
    }
    return write_config(directory, document)


@pytest.fixture(scope="module")
def quota_gateway(quota_config: Path) -> Iterator[RunningGateway]:
    with running_gateway(quota_config, quota_config.parent / "gateway.log") as running:
        yield running


def sdk(gateway: RunningGateway, name: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEYS[name], max_retries=0)


def chat(gateway: RunningGateway, name: str, **fields: Any) -> httpx.Response:
    body = {"model": "chat", "messages": PROMPT} | fields
    headers = {"authorization": f"Bearer {KEYS[name]}"} | fields.pop("headers", {})
    return HTTP.post(gateway.url + "/v1/chat/completions", json=body, headers=headers)


def test_a_request_limit_lets_exactly_n_through(quota_gateway: RunningGateway) -> None:
    with sdk(quota_gateway, "requests") as client:
        remaining = []
        for _ in range(5):
            raw = client.chat.completions.with_raw_response.create(model="chat", messages=PROMPT)
            assert raw.headers["x-ratelimit-limit-requests"] == "5"
            remaining.append(raw.headers["x-ratelimit-remaining-requests"])
            assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert remaining == ["4", "3", "2", "1", "0"]
        for _ in range(3):
            with pytest.raises(openai.RateLimitError) as refused:
                client.chat.completions.create(model="chat", messages=PROMPT)
            response = refused.value.response
            assert refused.value.code == "rate_limit_exceeded"
            assert int(response.headers["retry-after"]) > 0
            assert response.headers["x-ratelimit-remaining-requests"] == "0"


def test_settlement_charges_real_usage_not_the_reservation(
    quota_gateway: RunningGateway, quota_config: Path
) -> None:
    before = counter_used(quota_config, "tokens", "tokens")
    response = chat(quota_gateway, "tokens", max_tokens=5000)
    assert response.status_code == 200
    # The reservation held 5000 output tokens while the request ran.
    assert int(response.headers["x-ratelimit-remaining-tokens"]) < 100_000 - 5000
    settles_to(quota_config, "tokens", "tokens", before + response.json()["usage"]["total_tokens"])


def test_an_upstream_failure_is_refunded_in_full(
    quota_gateway: RunningGateway, quota_config: Path
) -> None:
    tokens, requests = (
        counter_used(quota_config, "tokens", "tokens"),
        counter_used(quota_config, "tokens", "requests"),
    )
    response = chat(quota_gateway, "tokens", headers={"x-mock-status": "500"})
    assert response.status_code == 500
    settles_to(quota_config, "tokens", "tokens", tokens)
    settles_to(quota_config, "tokens", "requests", requests)


def test_an_unreachable_provider_is_refunded_in_full(
    quota_gateway: RunningGateway, quota_config: Path
) -> None:
    tokens, requests = (
        counter_used(quota_config, "tokens", "tokens"),
        counter_used(quota_config, "tokens", "requests"),
    )
    assert_openai_error(chat(quota_gateway, "tokens", model="unreachable"), 503)
    settles_to(quota_config, "tokens", "tokens", tokens)
    settles_to(quota_config, "tokens", "requests", requests)


def test_clamping_lowers_max_tokens_to_what_is_left(
    quota_gateway: RunningGateway, mock: MockProvider
) -> None:
    response = chat(quota_gateway, "clamp", max_tokens=5000)
    assert response.status_code == 200
    prompt = estimate_tokens([PROMPT])
    assert mock.last_request()["body"]["max_tokens"] == 1000 - prompt


def test_a_money_budget_ends_with_insufficient_quota(quota_gateway: RunningGateway) -> None:
    with sdk(quota_gateway, "usd") as client:
        served = 0
        with pytest.raises(openai.RateLimitError) as refused:
            for _ in range(20):
                client.chat.completions.create(model="chat", messages=PROMPT, max_tokens=20)
                served += 1
    assert refused.value.code == "insufficient_quota"
    # 0.001 USD at 10 USD per million tokens is 100 tokens; each answer uses about 20.
    assert 2 <= served <= 5


def test_shadow_limits_serve_and_report(quota_gateway: RunningGateway) -> None:
    for _ in range(3):
        assert chat(quota_gateway, "shadow").status_code == 200
    log = quota_gateway.log_path.read_text()
    assert "shadow limit exceeded, request served: key:shadow 10 tokens per 1d" in log


def test_two_workers_hammered_never_overshoot_the_budget(
    quota_gateway: RunningGateway, quota_config: Path
) -> None:
    budget = 1000

    async def hammer() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            url = quota_gateway.url + "/v1/chat/completions"
            headers = {"authorization": f"Bearer {KEYS['budget']}"}
            body = {"model": "chat", "messages": PROMPT, "max_tokens": 50}
            return await asyncio.gather(
                *(client.post(url, json=body, headers=headers) for _ in range(150))
            )

    responses = asyncio.run(hammer())
    served = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(served) + len(refused) == len(responses)
    charged = sum(r.json()["usage"]["total_tokens"] for r in served)
    settles_to(quota_config, "budget", "tokens", charged)  # exactly the real usage
    assert charged <= budget, f"overshoot of {charged - budget} tokens"
    largest_reservation = estimate_tokens([PROMPT]) + 50
    assert charged > budget - largest_reservation - 30, "refusals left budget unused"
    assert refused


def test_a_client_that_leaves_mid_stream_is_charged_what_was_streamed(
    quota_gateway: RunningGateway, quota_config: Path
) -> None:
    before = counter_used(quota_config, "stream", "tokens")
    host, port = quota_gateway.url.removeprefix("http://").split(":")
    payload = (
        b'{"model":"chat","stream":true,"max_tokens":5000,'
        b'"messages":[{"role":"user","content":"Hello"}]}'
    )
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n"
        + f"authorization: Bearer {KEYS['stream']}\r\n".encode()
        + b"x-mock-chunk-delay-ms: 300\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request)
        received = b""
        while received.count(b"data: ") < 3:
            received += connection.recv(65536)
    wait_until(
        lambda: counter_used(quota_config, "stream", "concurrent", None) == 0,
        "the stream was never settled",
    )
    charged = counter_used(quota_config, "stream", "tokens") - before
    prompt = estimate_tokens([PROMPT])
    assert prompt + 3 <= charged < prompt + 13, charged  # 13 words in a whole answer


def test_a_cooldown_noted_by_one_replica_is_honoured_by_every_worker_of_every_replica(
    quota_gateway: RunningGateway, quota_config: Path, mock: MockProvider
) -> None:
    url = "/v1/chat/completions"
    body = {"model": "backed", "messages": PROMPT}
    headers = {"authorization": f"Bearer {KEYS['tokens']}"}
    mock.clear()
    throttle = {"x-mock-fail": f"{THROTTLED}=429/60"}
    first = HTTP.post(quota_gateway.url + url, json=body, headers=headers | throttle)
    assert first.status_code == 200, first.text
    assert [r["body"]["model"] for r in mock.requests()] == [THROTTLED, "gpt-4o-mini"]

    with running_gateway(quota_config, quota_config.parent / "replica.log") as replica:
        mock.clear()
        for gateway in (quota_gateway, replica):
            for _ in range(4):  # over both workers of each replica
                answer = HTTP.post(gateway.url + url, json=body, headers=headers)
                assert answer.status_code == 200, answer.text

    assert [r["body"]["model"] for r in mock.requests()] == ["gpt-4o-mini"] * 8, "no one asked"
