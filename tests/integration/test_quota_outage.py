"""Redis goes away mid-run: the failure policy decides, and service recovers by itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import OPENAI_KEY
from tests.harness import (
    HTTP,
    MockProvider,
    RunningGateway,
    assert_openai_error,
    free_port,
    gateway_yaml,
    redis_server,
    running_gateway,
    settles_to,
    sha256,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.envoy, pytest.mark.redis]

KEY = "sk-gw-quota-outage-0123456789"
PORT = free_port()


def document(mock: MockProvider, policy: str) -> dict[str, object]:
    return {
        "processor": {"message_timeout": "10s"},
        "providers": {
            "openai": {"kind": "openai", "base_url": mock.url, "api_key": "${file:openai}"}
        },
        "models": {"chat": {"provider": "openai", "model": "gpt-4o-mini"}},
        "keys": [
            {
                "id": "app",
                "sha256": sha256(KEY),
                "models": ["chat"],
                "limits": [{"tokens": 100_000, "per": "1d"}],
            }
        ],
        "quota": {"store": f"redis://127.0.0.1:{PORT}/0", "on_store_error": policy},
    }


@pytest.fixture(scope="module")
def config(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("outage")
    (directory / "openai").write_text(OPENAI_KEY)
    return write_config(directory, document(mock, "deny"))


@pytest.fixture(scope="module")
def gateway(config: Path) -> Iterator[RunningGateway]:
    with running_gateway(config, config.parent / "gateway.log") as running:
        yield running


def chat(gateway: RunningGateway) -> tuple[int, dict[str, object]]:
    response = HTTP.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "Hello"}]},
        headers={"authorization": f"Bearer {KEY}"},
    )
    if response.status_code == 503:
        assert_openai_error(response, 503)
    return response.status_code, response.json()


def switch_policy(config: Path, gateway: RunningGateway, mock: MockProvider, policy: str) -> None:
    reloads = gateway.log_path.read_text().count("configuration reloaded")
    config.write_text(gateway_yaml(document(mock, policy)))
    wait_until(
        lambda: gateway.log_path.read_text().count("configuration reloaded") > reloads,
        "the new policy was not loaded",
    )


def test_redis_outage_follows_the_policy_and_recovers(
    gateway: RunningGateway, config: Path, mock: MockProvider
) -> None:
    with redis_server(PORT):
        status, _ = chat(gateway)
        assert status == 200

    # Redis is gone; policy deny: a clear 503, nothing sent upstream.
    mock.clear()
    status, body = chat(gateway)
    assert status == 503
    assert body["error"]["code"] == "quota_store_unavailable"  # type: ignore[index]
    assert mock.requests() == []
    assert "quota store unavailable" in gateway.log_path.read_text()

    # Policy allow: served without counting.
    switch_policy(config, gateway, mock, "allow")
    status, _ = chat(gateway)
    assert status == 200

    # Redis is back (empty): counting resumes by itself, and only what ran since is counted.
    switch_policy(config, gateway, mock, "deny")
    with redis_server(PORT):
        status, body = chat(gateway)
        assert status == 200
        settles_to(config, "app", "tokens", body["usage"]["total_tokens"])  # type: ignore[index]
