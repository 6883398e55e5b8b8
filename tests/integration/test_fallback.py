"""Fallback across providers through a real Envoy: Envoy's router makes the attempts, each
one prepared by the processor for the target it goes to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ANTHROPIC_KEY, GATEWAY_KEY, gateway_document
from tests.harness import (
    HTTP,
    MockProvider,
    RunningGateway,
    access_log_lines,
    counter_used,
    free_port,
    gateway_yaml,
    logged_since,
    quota_usage,
    running_gateway,
    sample,
    settles_to,
    sha256,
    wait_until,
)

pytestmark = pytest.mark.envoy

CHAT = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}
PRICES = (
    {"input_per_million": 5.0, "output_per_million": 8.0},
    {"input_per_million": 3.0, "output_per_million": 15.0},
)
"""Of the `smart` alias's targets, in order: each answer costs its own target's price."""
METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def fallback_gateway(
    mock: MockProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("fallback")
    (directory / "secrets").mkdir()
    document = gateway_document(mock.url, directory / "secrets")
    document["models"] = {  # type: ignore[index]
        alias: {
            "targets": [
                {"provider": "openai", "model": first},
                {"provider": "anthropic", "model": second, "priority": 1},
            ]
        }
        # Cooldowns are per provider and model: each test that starts one has its own.
        for alias, first, second in (
            ("smart", "gpt-4o", "claude-sonnet-4-5"),
            ("cooling", "gpt-4o-cooling", "claude-cooling"),
            ("frozen", "gpt-4o-frozen", "claude-frozen"),
            ("slow", "gpt-4o-slow", "claude-slow"),
        )
    }
    document["models"]["slow"]["retry"] = {"per_attempt_timeout": "1s"}  # type: ignore[index]
    document["models"]["plain"] = {"provider": "openai", "model": "gpt-4o"}  # type: ignore[index]
    for target, price in zip(document["models"]["smart"]["targets"], PRICES, strict=True):  # type: ignore[index]
        target["price"] = price
    key = document["keys"][0]  # type: ignore[index]
    key["limits"] = [
        {"requests": 100, "per": "1d"},
        {"tokens": 1_000_000, "per": "1d"},
        {"usd": 100, "per": "1d", "model": "smart"},
    ]
    document["keys"] = [key]
    document["telemetry"] = {
        "access_log": str(directory / "access.log"),
        "metrics": {"prometheus_port": METRICS_PORT},
    }
    document["routing"] = {"expose_provider": True}
    config = directory / "gateway.yaml"
    config.write_text(gateway_yaml(document))
    with running_gateway(config, directory / "gateway.log") as running:
        yield running


def attempt_streams(gateway: RunningGateway) -> int:
    """The ext_proc streams Envoy opened for attempts of calls with fallback, all aliases."""
    admin = (Path(gateway.processor.removeprefix("unix:")).parent / "admin-address").read_text()
    stats = httpx.get(f"http://{admin.strip()}/stats?filter=ext_proc.streams_started").text
    return sum(
        int(value)
        for name, _, value in (line.partition(": ") for line in stats.splitlines())
        if name.startswith("cluster.alias_")
    )


@pytest.fixture(scope="module")
def config(fallback_gateway: RunningGateway) -> Path:
    return fallback_gateway.log_path.parent / "gateway.yaml"


def test_an_alias_without_fallback_sends_no_envoy_headers_upstream(
    fallback_gateway: RunningGateway, mock: MockProvider
) -> None:
    """Envoy numbers attempts for the whole virtual host once an alias has fallback; plain
    calls must not carry that count to their provider."""
    mock.clear()
    response = HTTP.post(
        fallback_gateway.url + "/v1/chat/completions", json=CHAT | {"model": "plain"}, headers=AUTH
    )

    assert response.status_code == 200, response.text
    upstream = mock.last_request()["headers"]
    assert not [name for name in upstream if name.startswith("x-envoy-")]


def test_a_throttled_first_target_falls_back_to_the_next_provider_in_its_schema(
    fallback_gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()

    response = HTTP.post(
        fallback_gateway.url + "/v1/chat/completions",
        json=CHAT,
        headers=AUTH | {"x-mock-fail": "gpt-4o=429"},
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion", "the client's schema, whoever answered"
    internal = {name for name in response.headers if name.startswith("x-extproc-")}
    assert internal == {"x-extproc-provider"}, "only what routing.expose_provider asks"
    assert response.headers["x-extproc-provider"] == "anthropic"
    assert answer["choices"][0]["message"]["content"]
    first, second = mock.requests()
    assert (first["path"], first["body"]["model"]) == ("/v1/chat/completions", "gpt-4o")
    assert (second["path"], second["body"]["model"]) == ("/v1/messages", "claude-sonnet-4-5")
    assert second["headers"]["x-api-key"] == "sha256:" + sha256(ANTHROPIC_KEY)
    assert "authorization" not in second["headers"], "the first provider's key stayed behind"
    assert not [name for name in second["headers"] if name.startswith("x-extproc-")]
    assert "x-envoy-attempt-count" not in second["headers"], "Envoy's count is for the span"


def test_a_healthy_first_target_answers_alone_without_a_second_processor_stream(
    fallback_gateway: RunningGateway, mock: MockProvider
) -> None:
    """The request's own stream prepared the first attempt for its target: Envoy's matcher
    skips the attempt's filter, so the call costs the processor one stream, as a plain one."""
    mock.clear()
    streams = attempt_streams(fallback_gateway)

    response = HTTP.post(fallback_gateway.url + "/v1/chat/completions", json=CHAT, headers=AUTH)

    assert response.status_code == 200, response.text
    assert [request["body"]["model"] for request in mock.requests()] == ["gpt-4o"]
    assert "x-extproc-prepared-for" not in mock.last_request()["headers"]
    assert attempt_streams(fallback_gateway) == streams


def test_only_the_attempts_after_the_first_are_prepared_by_a_stream_of_their_own(
    fallback_gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    streams = attempt_streams(fallback_gateway)

    response = chat(fallback_gateway, "smart", **{"x-mock-fail": "gpt-4o=503"})

    assert response.status_code == 200, response.text
    assert [r["body"]["model"] for r in mock.requests()] == ["gpt-4o", "claude-sonnet-4-5"]
    assert attempt_streams(fallback_gateway) == streams + 1


def test_a_header_only_the_next_target_may_get_reaches_it_on_fallback(
    fallback_gateway: RunningGateway, mock: MockProvider
) -> None:
    """An Anthropic client's beta header is not for OpenAI (the first target), but is for
    Claude: the first attempt goes without it, the second carries it."""
    mock.clear()

    response = HTTP.post(
        fallback_gateway.url + "/v1/messages",
        json={"model": "smart", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
        headers=AUTH | {"x-mock-fail": "gpt-4o=503", "anthropic-beta": "context-1m-2025-08-07"},
    )

    assert response.status_code == 200, response.text
    first, second = mock.requests()
    assert (first["body"]["model"], second["body"]["model"]) == ("gpt-4o", "claude-sonnet-4-5")
    assert "anthropic-beta" not in first["headers"]
    assert second["headers"]["anthropic-beta"] == "context-1m-2025-08-07"
    assert second["body"]["messages"] == [{"role": "user", "content": "hi"}]


def test_the_access_log_and_the_counters_follow_the_target_that_answered(
    fallback_gateway: RunningGateway, mock: MockProvider, config: Path
) -> None:
    processor = fallback_gateway.processor
    before = counter_used(config, "full", "requests", processor=processor)
    tokens = counter_used(config, "full", "tokens", processor=processor)
    spent = usd_used(config, processor)
    lines = len(access_log_lines(config))
    mock.clear()

    response = HTTP.post(
        fallback_gateway.url + "/v1/chat/completions",
        json=CHAT,
        headers=AUTH | {"x-mock-fail": "gpt-4o=503"},
    )

    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    entry = logged_since(config, lines)
    assert (entry["provider"], entry["model"]) == ("anthropic", "claude-sonnet-4-5")
    assert entry["attempts"] == 2
    assert "x-envoy-attempt-count" not in response.headers
    assert (entry["input_tokens"], entry["output_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    settles_to(config, "full", "requests", before + 1, processor=processor)
    used = usage["prompt_tokens"] + usage["completion_tokens"]
    settles_to(config, "full", "tokens", tokens + used, processor=processor)
    anthropic = PRICES[1]
    micro_usd = round(
        usage["prompt_tokens"] * anthropic["input_per_million"]
        + usage["completion_tokens"] * anthropic["output_per_million"]
    )
    assert entry["cost_usd"] == pytest.approx(micro_usd / 1e6), "the answering target's price"
    wait_until(
        lambda: usd_used(config, processor) == pytest.approx(spent + micro_usd / 1e6),
        "the usd limit was not charged the answering target's price",
    )


def usd_used(config: Path, processor: str) -> float:
    return float(quota_usage(config, processor)["key:full usd 1d smart"]["used"])


def test_when_every_target_fails_the_client_gets_the_last_error_and_is_not_charged(
    fallback_gateway: RunningGateway, mock: MockProvider, config: Path
) -> None:
    processor = fallback_gateway.processor
    before = counter_used(config, "full", "requests", processor=processor)
    mock.clear()

    response = HTTP.post(
        fallback_gateway.url + "/v1/chat/completions",
        json=CHAT,
        headers=AUTH | {"x-mock-fail": "gpt-4o=500, claude-sonnet-4-5=529"},
    )

    assert response.status_code == 529, response.text
    assert response.json()["error"]["message"], "an OpenAI-shaped error"
    assert [r["body"]["model"] for r in mock.requests()] == ["gpt-4o", "claude-sonnet-4-5"]
    settles_to(config, "full", "requests", before, processor=processor)


def test_a_stream_falls_back_before_its_first_byte(
    fallback_gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()

    with HTTP.stream(
        "POST",
        fallback_gateway.url + "/v1/chat/completions",
        json=CHAT | {"stream": True},
        headers=AUTH | {"x-mock-fail": "gpt-4o=429"},
    ) as response:
        assert response.status_code == 200
        text = response.read().decode()
        assert response.headers["x-extproc-provider"] == "anthropic"

    assert text.rstrip().endswith("data: [DONE]")
    assert '"chat.completion.chunk"' in text, "Anthropic's stream, written in OpenAI's events"
    assert [r["body"]["model"] for r in mock.requests()] == ["gpt-4o", "claude-sonnet-4-5"]


def test_a_stream_cut_after_its_first_byte_is_not_sent_again(
    fallback_gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()

    with (
        contextlib.suppress(httpx.HTTPError),
        HTTP.stream(
            "POST",
            fallback_gateway.url + "/v1/chat/completions",
            json=CHAT | {"stream": True},
            headers=AUTH | {"x-mock-cut-after": "3", "x-mock-chunk-delay-ms": "20"},
        ) as response,
    ):
        assert response.status_code == 200
        response.read()  # ends in an error event or a cut connection

    assert [r["body"]["model"] for r in mock.requests()] == ["gpt-4o"]


def chat(gateway: RunningGateway, alias: str, **extra: str) -> httpx.Response:
    body = CHAT | {"model": alias}
    return HTTP.post(gateway.url + "/v1/chat/completions", json=body, headers=AUTH | extra)


def test_a_target_throttled_with_retry_after_is_skipped_while_it_cools_down(
    fallback_gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    throttled = chat(fallback_gateway, "cooling", **{"x-mock-fail": "gpt-4o-cooling=429/30"})
    assert throttled.status_code == 200, throttled.text

    again = chat(fallback_gateway, "cooling")

    assert again.status_code == 200, again.text
    models = [r["body"]["model"] for r in mock.requests()]
    assert models == ["gpt-4o-cooling", "claude-cooling", "claude-cooling"], "not asked again"


def test_when_every_target_cools_down_the_gateway_answers_429_itself(
    fallback_gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    script = {"x-mock-fail": "gpt-4o-frozen=429/30, claude-frozen=429/20"}
    assert chat(fallback_gateway, "frozen", **script).status_code == 429
    mock.clear()

    refused = chat(fallback_gateway, "frozen")

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "providers_throttled"
    assert 1 <= int(refused.headers["retry-after"]) <= 20, "the soonest recovery"
    assert mock.requests() == [], "nothing sent upstream"


def test_a_stalled_provider_is_given_up_after_the_per_attempt_timeout(
    fallback_gateway: RunningGateway, mock: MockProvider
) -> None:
    """The first attempt got no answer: Envoy reports it, and it is counted as such."""
    mock.clear()

    response = chat(fallback_gateway, "slow", **{"x-mock-fail": "gpt-4o-slow=stall"})

    assert response.status_code == 200, response.text
    assert [r["body"]["model"] for r in mock.requests()] == ["gpt-4o-slow", "claude-slow"]

    def counted() -> tuple[float, float] | None:
        text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics").text
        found = tuple(
            sample(
                text,
                "extproc_attempts_total",
                extproc_model_alias="slow",
                extproc_attempt_outcome=outcome,
            )
            for outcome in ("no_answer", "ok")
        )
        return found if found == (1, 1) else None

    wait_until(counted, "the first attempt was never counted")


def test_a_field_the_next_target_cannot_carry_is_a_clear_400_and_costs_nothing(
    fallback_gateway: RunningGateway, mock: MockProvider, config: Path
) -> None:
    processor = fallback_gateway.processor
    before = counter_used(config, "full", "requests", processor=processor)
    mock.clear()

    response = HTTP.post(
        fallback_gateway.url + "/v1/chat/completions",
        json=CHAT | {"n": 2},  # OpenAI's; Anthropic has no equivalent
        headers=AUTH | {"x-mock-fail": "gpt-4o=503"},
    )

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("n", "unsupported_parameter")
    assert "anthropic" in error["message"]
    assert not [name for name in response.headers if name.startswith("x-extproc-r")]
    assert [r["body"]["model"] for r in mock.requests()] == ["gpt-4o"], "nothing reached Claude"
    settles_to(config, "full", "requests", before, processor=processor)
