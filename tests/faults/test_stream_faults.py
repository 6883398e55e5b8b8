"""Streams that do not end well: a provider that stalls mid-stream, one that cuts its
connection, a client that leaves. Each time the client learns it (an error event in its own
schema, or the cut), the slot is free again, the charge is what was streamed, and the
access log says how the call ended."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.harness import (
    MockProvider,
    RunningGateway,
    access_log_lines,
    counter_used,
    logged_since,
    running_gateway,
    sha256,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.envoy

KEY = "sk-gw-faults-stream-0123456789"
GUARDED_KEY = "sk-gw-faults-guarded-0123456789"
IDLE = 1.0
"""The providers' idle timeout in these tests (seconds)."""


@pytest.fixture(scope="module")
def config(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("stream-faults")
    (directory / "openai").write_text(OPENAI_KEY)
    (directory / "anthropic").write_text(ANTHROPIC_KEY)
    provider: dict[str, Any] = {"base_url": mock.url, "idle_timeout": f"{IDLE:g}s"}
    return write_config(
        directory,
        {
            "processor": {"message_timeout": "10s"},
            "providers": {
                "openai": {**provider, "kind": "openai", "api_key": "${file:openai}"},
                "anthropic": {**provider, "kind": "anthropic", "api_key": "${file:anthropic}"},
            },
            "models": {
                "chat": {"provider": "openai", "model": "gpt-4o-mini"},
                "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
            },
            "keys": [
                {
                    "id": "app",
                    "sha256": sha256(KEY),
                    "models": ["*"],
                    "limits": [{"concurrent": 2}, {"tokens": 10_000_000, "per": "1d"}],
                },
                {
                    "id": "guarded",
                    "sha256": sha256(GUARDED_KEY),
                    "models": ["*"],
                    "guardrails": ["cards"],
                    "limits": [{"tokens": 10_000_000, "per": "1d"}],
                },
            ],
            "guardrails": {
                "cards": {"detectors": ["credit_card"], "input": "off", "output": "mask"}
            },
            "telemetry": {"access_log": str(directory / "access.log")},
        },
    )


@pytest.fixture(scope="module")
def gateway(config: Path) -> Iterator[RunningGateway]:
    with running_gateway(config, config.parent / "gateway.log") as running:
        yield running


def stream(
    gateway: RunningGateway, key: str = KEY, **scenario: str
) -> tuple[list[dict[str, Any]], bool]:
    """A streamed chat: the JSON events received, and whether the stream ended cleanly."""
    body = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    headers = {"authorization": f"Bearer {key}", **scenario}
    events: list[dict[str, Any]] = []
    try:
        with httpx.stream(
            "POST", gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=30
        ) as response:
            assert response.status_code == 200, (scenario, response.read())
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    events.append(orjson.loads(line[6:]))
    except httpx.RemoteProtocolError:
        return events, False
    return events, True


def slots_free(gateway: RunningGateway, config: Path) -> bool:
    return counter_used(config, "app", "concurrent", per=None, processor=gateway.processor) == 0


def test_a_provider_that_stalls_mid_stream_is_ended_with_an_error_event(
    gateway: RunningGateway, config: Path, mock: MockProvider
) -> None:
    before = len(access_log_lines(config))
    started = time.monotonic()
    events, clean = stream(gateway, **{"x-mock-stall-after": "3", "x-mock-words": "50"})
    elapsed = time.monotonic() - started

    assert clean, "the stream ends properly, with an error event"
    assert [event for event in events if "error" in event] == [events[-1]]
    assert events[-1]["error"]["code"] == "upstream_timeout"
    assert len(events) == 4  # three of the provider's, then the error
    assert IDLE <= elapsed < IDLE + 5
    entry = logged_since(config, before)
    assert entry["error_type"] == "upstream_timeout"
    assert 0 < entry["output_tokens"] < 10  # what was streamed, not the step reserved
    wait_until(lambda: slots_free(gateway, config), "the stalled stream kept its slot")
    assert mock.last_request()["stream"]["stalled"]


def test_a_screened_stream_that_stalls_keeps_back_what_could_be_a_card_number(
    gateway: RunningGateway, config: Path
) -> None:
    """The text held in the guardrails' window when the provider goes silent never leaves:
    the client gets what was settled, then the error event; the call is charged what the
    provider streamed, held text included."""
    before = len(access_log_lines(config))
    pieces = orjson.dumps(["Card: ", "4111 1111 ", "1111 1111 ok"]).decode()
    events, clean = stream(
        gateway, GUARDED_KEY, **{"x-mock-text": pieces, "x-mock-stall-after": "3"}
    )
    text = "".join(
        choice["delta"].get("content") or ""
        for event in events
        for choice in event.get("choices", ())
    )
    assert clean and text == "Card: "
    assert events[-1]["error"]["code"] == "upstream_timeout"
    entry = logged_since(config, before)
    assert entry["error_type"] == "upstream_timeout" and entry["output_tokens"] >= 2


def test_an_anthropic_client_gets_its_own_error_event_on_a_stall(
    gateway: RunningGateway, config: Path
) -> None:
    client = anthropic.Anthropic(
        base_url=gateway.url,
        api_key=KEY,
        default_headers={"x-mock-stall-after": "2", "x-mock-words": "50"},
        max_retries=0,
    )
    with (
        pytest.raises(anthropic.APIStatusError) as stalled,
        client.messages.stream(
            model="claude", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
        ) as events,
    ):
        for _ in events:
            pass
    assert "stopped sending" in str(stalled.value)
    wait_until(lambda: slots_free(gateway, config), "the stalled stream kept its slot")


@pytest.mark.parametrize("cut", ["provider", "client"])
def test_a_cut_stream_is_logged_as_cut_and_frees_its_slot(
    gateway: RunningGateway, config: Path, cut: str
) -> None:
    before = len(access_log_lines(config))
    if cut == "provider":
        scenario = {"x-mock-cut-after": "3", "x-mock-words": "50", "x-mock-chunk-delay-ms": "50"}
        _, clean = stream(gateway, **scenario)
        assert not clean  # (what came before the cut may not all reach the client)
    else:
        body = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
        headers = {
            "authorization": f"Bearer {KEY}",
            "x-mock-words": "500",
            "x-mock-chunk-delay-ms": "20",
        }
        with httpx.stream(
            "POST", gateway.url + "/v1/chat/completions", json=body, headers=headers
        ) as response:
            next(response.iter_raw())  # the first bytes, then the client leaves
    entry = logged_since(config, before)
    assert entry["status"] == 200
    # Envoy tells the processor who cut it (its response flags, over its access-log service).
    assert entry["error_type"] == {"provider": "upstream_cut", "client": "client_cut"}[cut]
    wait_until(lambda: slots_free(gateway, config), "the cut stream kept its slot")


def test_an_event_over_the_limit_ends_the_stream_with_an_error_event(
    gateway: RunningGateway, config: Path
) -> None:
    before = len(access_log_lines(config))
    # One streamed event of 9 MB: more than the gateway relays (max_request_body, 8 MiB).
    events, clean = stream(gateway, **{"x-mock-words": "2", "x-mock-word-bytes": "9000000"})

    assert clean
    assert events[-1]["error"]["code"] == "event_too_large"
    assert not any("error" in event for event in events[:-1])
    entry = logged_since(config, before)
    assert (entry["status"], entry["error_type"]) == (200, "event_too_large")
    wait_until(lambda: slots_free(gateway, config), "the stream kept its slot")


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_events_of_several_megabytes_reach_the_client_whole(
    gateway: RunningGateway, client: str
) -> None:
    size = 6_000_000
    scenario = {"x-mock-words": "2", "x-mock-word-bytes": str(size)}
    if client == "openai":
        events, clean = stream(gateway, **scenario)
        assert clean
        text = "".join(
            event["choices"][0]["delta"].get("content") or ""
            for event in events
            if event.get("choices")
        )
    else:  # translated from the provider's schema, event by event
        sdk = anthropic.Anthropic(
            base_url=gateway.url, api_key=KEY, default_headers=scenario, max_retries=0
        )
        with sdk.messages.stream(
            model="chat", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
        ) as answer:
            text = "".join(answer.text_stream)
    assert text == "w" * (2 * size)


def test_with_several_workers_each_call_hears_who_cut_it(
    mock: MockProvider, tmp_path: Path
) -> None:
    (tmp_path / "openai").write_text(OPENAI_KEY)
    config = write_config(
        tmp_path,
        {
            "processor": {"workers": 2, "message_timeout": "10s"},
            "providers": {
                "openai": {"kind": "openai", "base_url": mock.url, "api_key": "${file:openai}"}
            },
            "models": {"chat": {"provider": "openai", "model": "gpt-4o-mini"}},
            "keys": [{"id": "app", "sha256": sha256(KEY), "models": ["*"]}],
            "telemetry": {"access_log": str(tmp_path / "access.log")},
        },
    )
    with running_gateway(config, tmp_path / "gateway.log") as gateway:
        body = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
        headers = {
            "authorization": f"Bearer {KEY}",
            "x-mock-words": "500",
            "x-mock-chunk-delay-ms": "20",
        }
        for _ in range(4):  # over both workers
            with httpx.stream(
                "POST", gateway.url + "/v1/chat/completions", json=body, headers=headers
            ) as response:
                next(response.iter_raw())
        entries = wait_until(
            lambda: len(lines := access_log_lines(config)) == 4 and lines,
            "not every cut call was logged",
        )
    assert {orjson.loads(line)["error_type"] for line in entries} == {"client_cut"}
