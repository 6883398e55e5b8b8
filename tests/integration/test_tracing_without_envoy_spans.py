"""Tracing as configured by default (`envoy_spans: false`): Envoy renders without its tracer,
and the processor's span records the hop by itself, continuing the client's trace context (or
starting a trace)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import GATEWAY_KEY, chat_config
from tests.harness import (
    HTTP,
    MockProvider,
    RunningGateway,
    running_gateway,
    sha256,
    wait_until,
)
from tests.otlp_receiver import Received

pytestmark = pytest.mark.envoy

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def gateway(
    mock: MockProvider, receiver: tuple[str, Received], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("processor-spans")
    endpoint, _ = receiver
    tracing = {"enabled": True, "endpoint": endpoint}
    keys = [{"id": "full", "sha256": sha256(GATEWAY_KEY), "models": ["*"]}]
    config = chat_config(
        directory, mock.url, {"keys": keys, "telemetry": {"tracing": tracing, "access_log": "off"}}
    )
    with running_gateway(config, directory / "gateway.log") as running:
        yield running


def chat(gateway: RunningGateway, **headers: str) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}
    headers["authorization"] = f"Bearer {GATEWAY_KEY}"
    answer = HTTP.post(gateway.url + "/v1/chat/completions", json=body, headers=headers)
    assert answer.status_code == 200, answer.text


def processor_spans(received: Received, count: int) -> list[dict[str, Any]]:
    def arrived() -> list[dict[str, Any]] | None:
        with received.lock:
            chats = [s for s in received.spans if s["name"].startswith("chat ")]
        return chats if len(chats) >= count else None

    return wait_until(arrived, f"{count} chat spans never arrived")


def test_the_processor_span_continues_the_clients_trace_and_envoy_records_none(
    gateway: RunningGateway, receiver: tuple[str, Received]
) -> None:
    _, received = receiver
    chat(gateway, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
    chat(gateway)  # no context: a trace of its own
    first, second = processor_spans(received, 2)
    assert (first["trace_id"], first["parent_id"]) == (CLIENT_TRACE, CLIENT_SPAN)
    assert first["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
    assert second["parent_id"] == "" and second["trace_id"] != CLIENT_TRACE
    with received.lock:
        services = {span["service"] for span in received.spans}
    assert services == {"extproc-gateway"}, "Envoy's tracer is off"


def test_a_client_that_does_not_sample_is_not_traced(
    gateway: RunningGateway, receiver: tuple[str, Received]
) -> None:
    _, received = receiver
    unsampled = "5bf92f3577b34da6a3ce929d0e0e4736"
    chat(gateway, traceparent=f"00-{unsampled}-{CLIENT_SPAN}-00")
    chat(gateway, traceparent=f"00-{CLIENT_TRACE[:-1]}7-{CLIENT_SPAN}-01")  # arrives after
    processor_spans(received, 3)
    with received.lock:
        assert not [s for s in received.spans if s["trace_id"] == unsampled]
