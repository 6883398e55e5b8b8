"""What reaches the provider, and what comes back: through real Envoy and the processor to the
mock, which records every header it receives and answers with the headers each real API
adds (its account, its limits, Cloudflare's cookie). For each provider kind and each client
schema, a request full of what a client must not pass on reaches the provider with exactly
the allowed set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from extproc.pipeline.upstream_headers import GATEWAY_AGENT
from tests.conftest import ANTHROPIC_KEY, AZURE_KEY, GATEWAY_KEY, GEMINI_KEY, OPENAI_KEY
from tests.harness import (
    MockProvider,
    RunningGateway,
    access_log_lines,
    logged_since,
    running_gateway,
    sha256,
    write_config,
)

pytestmark = pytest.mark.envoy

KEY = "sk-gw-headers-0123456789"
CLIENT_HEADERS = {
    "cookie": "session=abc123",
    "x-forwarded-for": "1.2.3.4",
    "forwarded": "for=1.2.3.4",
    "x-real-ip": "1.2.3.4",
    "x-internal-token": "t0k",
    "x-stainless-os": "Linux",
    "openai-organization": "org-client",
    "openai-project": "proj-client",
    "anthropic-organization-id": "client-org",
    "openai-beta": "assistants=v2",
    "anthropic-beta": "prompt-caching-2024-07-31",
    "user-agent": "myapp/1.0",
    "x-my-trace": "trace-1",
}
"""What a client sends that no provider should get, but for the betas of its own schema and
what the configuration forwards."""
ENVOYS = {"host", "x-request-id"}
"""Envoy's own on every upstream request."""
GATEWAYS = {"content-type", "content-length", "accept-encoding", "user-agent", "accept"}
"""What the gateway sets (or keeps) on every provider request."""
CREDENTIALS = {
    "openai": {"authorization", "openai-organization", "openai-project"},
    "azure": {"api-key"},
    "anthropic": {"x-api-key", "anthropic-version"},
    "gemini": {"x-goog-api-key"},
}
ALIASES = {"openai": "oa", "azure": "az", "anthropic": "an", "gemini": "ge"}
FEATURES = {"openai": "openai-beta", "azure": "openai-beta", "anthropic": "anthropic-beta"}
SCHEMAS = {
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]}),
    "responses": ("/v1/responses", {"input": "Hi"}),
    "messages": (
        "/v1/messages",
        {"max_tokens": 20, "messages": [{"role": "user", "content": "Hi"}]},
    ),
}
SPEAKS = {"chat": ("openai", "azure"), "responses": ("openai", "azure"), "messages": ("anthropic",)}
"""The provider kinds whose own schema each client schema is."""


@pytest.fixture(scope="module")
def config(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("headers")
    keys = {"openai": OPENAI_KEY, "azure": AZURE_KEY, "anthropic": ANTHROPIC_KEY}
    keys["gemini"] = GEMINI_KEY
    for name, value in keys.items():
        (directory / name).write_text(value)
    providers: dict[str, Any] = {
        "openai": {
            "kind": "openai",
            "base_url": mock.url,
            "api_key": "${file:openai}",
            "organization": "org-gateway",
            "project": "proj_gateway",
            "forward_headers": ["x-my-trace"],
        },
        "azure": {
            "kind": "azure",
            "base_url": mock.url + "/azure",
            "api_key": "${file:azure}",
            "api_version": "2024-10-21",
        },
        "anthropic": {"kind": "anthropic", "base_url": mock.url, "api_key": "${file:anthropic}"},
        "gemini": {"kind": "gemini", "base_url": mock.url, "api_key": "${file:gemini}"},
    }
    return write_config(
        directory,
        {
            "processor": {"message_timeout": "10s"},
            "providers": providers,
            "models": {
                "oa": {"provider": "openai", "model": "gpt-4o"},
                "az": {"provider": "azure", "model": "my-deployment"},
                "an": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
                "ge": {"provider": "gemini", "model": "gemini-2.5-flash"},
                "tagged": {
                    "provider": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "headers": {"x-team-tag": "search"},
                },
                "fb": {
                    "targets": [
                        {"provider": "openai", "model": "gpt-4o"},
                        {"provider": "anthropic", "model": "claude-sonnet-4-5", "priority": 1},
                    ]
                },
            },
            "keys": [{"id": "app", "sha256": sha256(KEY), "models": ["*"]}],
            "routing": {"client_user_agent": "append"},
            "telemetry": {"access_log": str(directory / "access.log")},
        },
    )


@pytest.fixture(scope="module")
def headers_gateway(config: Path) -> Iterator[RunningGateway]:
    with running_gateway(config, config.parent / "gateway.log") as running:
        yield running


def call(
    gateway: RunningGateway, schema: str, alias: str, key: str = KEY, **extra: str
) -> httpx.Response:
    path, body = SCHEMAS[schema]
    auth = {"x-api-key": key} if schema == "messages" else {"authorization": f"Bearer {key}"}
    if schema == "messages":
        auth["anthropic-version"] = "2023-06-01"
    return httpx.post(
        gateway.url + path,
        json={"model": alias, **body},
        headers={**CLIENT_HEADERS, **auth, **extra},
        timeout=30,
    )


@pytest.mark.parametrize("schema", sorted(SCHEMAS))
@pytest.mark.parametrize("kind", sorted(ALIASES))
def test_a_provider_gets_exactly_what_it_needs(
    kind: str, schema: str, headers_gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    answer = call(headers_gateway, schema, ALIASES[kind])
    assert answer.status_code == 200, answer.text

    received = mock.last_request()["headers"]
    expected = ENVOYS | GATEWAYS | CREDENTIALS[kind]
    if kind in SPEAKS[schema]:
        expected.add(FEATURES[kind])  # its own schema's betas, for it
    if kind == "openai":
        expected.add("x-my-trace")  # forwarded by its configuration
    assert set(received) == expected
    assert received["user-agent"] == f"{GATEWAY_AGENT} myapp/1.0"
    if kind == "openai":  # billed to the gateway's account, whatever the client said
        assert received["openai-organization"] == "org-gateway"
        assert received["openai-project"] == "proj_gateway"


@pytest.mark.parametrize("kind", sorted(ALIASES))
def test_an_answer_keeps_nothing_of_the_providers_account(
    kind: str, headers_gateway: RunningGateway, config: Path
) -> None:
    before = len(access_log_lines(config))
    extra = {"x-mock-response-headers": '{"x-internal-host": "10.1.2.3"}'}
    answer = call(headers_gateway, "chat", ALIASES[kind], **extra)
    assert answer.status_code == 200

    shown = {name.lower() for name in answer.headers}
    envoys = {"date", "server", "vary", "content-encoding", "transfer-encoding"}  # gzip for us
    assert shown <= {"content-type", "content-length", "x-request-id", *envoys}, shown
    entry = logged_since(config, before)
    if kind == "gemini":  # Google's answers carry no request id
        assert "x-request-id" not in shown and entry["provider_request_id"] is None
    else:
        assert answer.headers["x-request-id"] == entry["provider_request_id"]


def test_a_targets_fixed_headers_are_set(
    headers_gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    assert call(headers_gateway, "chat", "tagged", **{"x-team-tag": "forged"}).status_code == 200
    assert mock.last_request()["headers"]["x-team-tag"] == "search"


def test_a_fallback_attempt_carries_nothing_of_the_first_provider(
    headers_gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    answer = call(headers_gateway, "chat", "fb", **{"x-mock-fail": "gpt-4o=429"})
    assert answer.status_code == 200

    first, second = mock.requests()
    assert first["path"] == "/v1/chat/completions" and second["path"] == "/v1/messages"
    assert first["headers"]["openai-beta"] == "assistants=v2"
    leaked = {"openai-beta", "authorization", "openai-organization", "openai-project"}
    assert not leaked & set(second["headers"])
    assert set(second["headers"]) <= (
        ENVOYS | GATEWAYS | CREDENTIALS["anthropic"] | {"x-mock-fail"}
    )


def test_by_default_a_provider_sees_only_the_gateways_user_agent(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    assert call(gateway, "chat", "gpt-4o", key=GATEWAY_KEY).status_code == 200
    assert mock.last_request()["headers"]["user-agent"] == GATEWAY_AGENT
