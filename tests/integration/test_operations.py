"""Running the gateway: fail-closed without a processor, instances side by side, workers."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.conftest import GATEWAY_KEY, gateway_document
from tests.harness import (
    HTTP,
    MockProvider,
    Process,
    RunningGateway,
    envoy_only,
    extproc,
    gateway_yaml,
    running_gateway,
)

pytestmark = pytest.mark.envoy

AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_processor_down_fails_closed_with_a_json_503(
    gateway_config: Path, mock: MockProvider, tmp_path: Path
) -> None:
    mock.clear()
    with envoy_only(gateway_config, tmp_path, processor=f"unix:{tmp_path}/nobody.sock") as (_, url):
        # Even a request that names the provider route itself must not get through.
        response = HTTP.post(
            url + "/v1/chat/completions", json=CHAT, headers=AUTH | {"x-extproc-route": "openai"}
        )

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "gateway_unavailable"
    assert mock.requests() == [], "nothing reached the provider"


def test_second_instance_with_two_workers_runs_beside_the_first(
    gateway: RunningGateway, mock: MockProvider, tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    document = gateway_document(mock.url, secrets_dir)
    document["processor"] = {"workers": 2, "message_timeout": "10s"}
    config = tmp_path / "second.yaml"
    config.write_text(gateway_yaml(document))

    with running_gateway(config, tmp_path / "second.log") as second:
        assert second.url != gateway.url
        for url in (gateway.url, second.url) * 10:
            response = HTTP.post(url + "/v1/chat/completions", json=CHAT, headers=AUTH)
            assert response.status_code == 200, response.text
    assert second.process.popen.returncode == 0, "stopped cleanly on SIGTERM"


def test_client_envoy_control_headers_are_not_honoured(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    headers = AUTH | {
        "x-envoy-upstream-rq-timeout-ms": "1",
        "x-envoy-retry-on": "5xx",
        "x-mock-latency-ms": "50",
    }

    response = HTTP.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=headers)

    assert response.status_code == 200, "a 1 ms timeout from the client would have been a 504"
    assert not [name for name in response.headers if name.startswith("x-envoy-")]
    upstream = mock.last_request()["headers"]
    assert not [name for name in upstream if name.startswith("x-envoy-")]


@pytest.mark.parametrize("path", ["/v1/models/embed", "/v1/models/gpt-4o"])
def test_model_retrieval(gateway: RunningGateway, path: str) -> None:
    response = HTTP.get(gateway.url + path, headers=AUTH)
    assert response.status_code == 200
    assert orjson.loads(response.content)["id"] == path.rsplit("/", 1)[1]


def test_a_taken_port_is_a_clear_start_up_failure(
    gateway: RunningGateway, gateway_config: Path, tmp_path: Path
) -> None:
    port = gateway.url.rsplit(":", 1)[1]
    log = tmp_path / "second.log"
    second = Process(
        extproc("run", "--config", str(gateway_config), "--port", port), stderr_path=log
    )

    assert second.popen.wait(timeout=120) == 1
    second.stop()
    assert "gateway did not start: envoy exited during start-up" in log.read_text()
    assert HTTP.get(gateway.url + "/v1/models", headers=AUTH).status_code == 200


def test_processor_too_slow_is_a_json_504(mock: MockProvider, tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    document = gateway_document(mock.url, secrets_dir)
    # No processor answers within a microsecond: every request meets the timeout.
    document["processor"] = {"message_timeout": "0.001ms"}
    config = tmp_path / "slow.yaml"
    config.write_text(gateway_yaml(document))
    mock.clear()

    with running_gateway(config, tmp_path / "slow.log") as slow:
        response = HTTP.post(slow.url + "/v1/chat/completions", json=CHAT, headers=AUTH)

    assert response.status_code == 504, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "gateway_timeout"
    assert mock.requests() == []
