"""Callers an external authorization service vouches for (Envoy's ext_authz filter, the way
Envoy Gateway's SecurityPolicy or OPA sit in front): its metadata identifies the caller to the
processor; its refusal reaches the client and nothing else; without its word a gateway key is
still needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.authz_server import REVOKED, SESSION_HEADER, authz_server
from tests.conftest import CHAT, GATEWAY_KEY, chat_config
from tests.harness import (
    MockProvider,
    RunningGateway,
    access_log_lines,
    assert_openai_error,
    logged_since,
    running_gateway,
    sha256,
)

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def gateway(
    mock: MockProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, RunningGateway]]:
    directory = tmp_path_factory.mktemp("ext-authz")
    with authz_server() as address:
        config = chat_config(
            directory,
            mock.url,
            {
                "identity": {
                    "ext_authz": {"address": address},
                    "rules": [
                        {
                            "name": "sessions",
                            "ext_authz": {"claims": {"groups": "ml-team"}},
                            "principal": "user:{sub}",
                            "models": ["chat"],
                        }
                    ],
                },
                "keys": [{"id": "app", "sha256": sha256(GATEWAY_KEY), "models": ["*"]}],
            },
        )
        with running_gateway(config, directory / "gateway.log") as running:
            yield config, running


def call(gateway: RunningGateway, **headers: str) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=30)


def test_whom_the_service_vouches_for_is_served_as_its_rule_says(
    gateway: tuple[Path, RunningGateway],
) -> None:
    config, running = gateway
    before = len(access_log_lines(config))
    answer = call(running, **{SESSION_HEADER: "session-alice"})
    assert answer.status_code == 200, answer.text
    logged = logged_since(config, before)
    assert (logged["principal_kind"], logged["subject"]) == ("ext_authz", "user:alice")
    models = httpx.get(running.url + "/v1/models", headers={SESSION_HEADER: "session-alice"})
    assert [model["id"] for model in models.json()["data"]] == ["chat"]


def test_the_services_refusal_reaches_the_client_and_nothing_else(
    gateway: tuple[Path, RunningGateway], mock: MockProvider
) -> None:
    received = len(mock.requests())
    answer = call(gateway[1], **{SESSION_HEADER: REVOKED, "authorization": f"Bearer {GATEWAY_KEY}"})
    assert answer.status_code == 403
    assert len(mock.requests()) == received


def test_without_the_services_word_a_key_is_needed(gateway: tuple[Path, RunningGateway]) -> None:
    _, running = gateway
    assert assert_openai_error(call(running), 401)["code"] == "invalid_api_key"
    assert call(running, authorization=f"Bearer {GATEWAY_KEY}").status_code == 200
