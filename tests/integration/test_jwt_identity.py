"""Callers known by their JWT, verified by Envoy's own `jwt_authn` filter with a local JWKS:
the processor reads only what Envoy verified. Valid tokens are served with their rule's
models and limits; refused tokens get 401 and reach nothing; a verified identity no rule
admits gets 403; per-subject budgets hold exactly across two processors sharing Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.conftest import CHAT, GATEWAY_KEY, chat_config
from tests.harness import (
    MockProvider,
    RedisServer,
    RunningGateway,
    access_log_lines,
    assert_openai_error,
    logged_since,
    quota_usage,
    redis_server,
    running_gateway,
    sha256,
)
from tests.tokens import Signer, tampered, unsigned

pytestmark = pytest.mark.envoy

ISSUER, AUDIENCE = "https://idp.test", "llm-gateway"
DAILY_CALLS = 3


@dataclass
class Setup:
    config: Path
    signer: Signer
    gateways: list[RunningGateway]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def setup(
    mock: MockProvider, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("jwt")
    signer = Signer(ISSUER, AUDIENCE)
    signer.write_jwks(directory / "jwks.json")
    config = chat_config(
        directory,
        mock.url,
        {
            "identity": {
                "jwt": {
                    "corp": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks_file": "jwks.json"}
                },
                "rules": [
                    {
                        "name": "ml-users",
                        "jwt": {"issuer": "corp", "claims": {"groups": "ml-team"}},
                        "principal": "user:{sub}",
                        "team": "{groups[0]}",
                        "models": ["chat"],
                        "limits": [{"requests": DAILY_CALLS, "per": "1d", "per_subject": "sub"}],
                    }
                ],
            },
            "teams": {"ml-team": {"limits": [{"requests": 1000, "per": "1d"}]}},
            "keys": [{"id": "app", "sha256": sha256(GATEWAY_KEY), "models": ["*"]}],
            "quota": {"store": redis.url},
        },
    )
    with ExitStack() as stack:
        gateways = [
            stack.enter_context(running_gateway(config, directory / f"gateway-{index}.log"))
            for index in range(2)
        ]
        yield Setup(config, signer, gateways)


def call(gateway: RunningGateway, token: str | None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=30)


def test_a_verified_token_is_served_as_its_rule_says(setup: Setup, mock: MockProvider) -> None:
    gateway = setup.gateways[0]
    token = setup.signer.token(sub="alice", groups=["ml-team", "other"])
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0)
    before = len(access_log_lines(setup.config))

    answer = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Hi"}]
    )

    assert answer.choices[0].message.content
    upstream = mock.last_request()
    assert token not in orjson.dumps(upstream).decode()  # the token stays at the gateway
    logged = logged_since(setup.config, before)
    assert (logged["principal_kind"], logged["subject"], logged["key_id"]) == (
        "jwt",
        "user:alice",
        "user:alice",
    )
    assert logged["team"] == "ml-team"
    assert [m.id for m in client.models.list()] == ["chat"]  # what this caller may use
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="big", messages=[{"role": "user", "content": "Hi"}])


@pytest.mark.parametrize(
    "kind", ["expired", "wrong issuer", "wrong audience", "tampered", "alg none", "unknown key"]
)
def test_a_token_envoy_refuses_gets_401_and_reaches_nothing(
    setup: Setup, mock: MockProvider, kind: str
) -> None:
    signer = setup.signer
    tokens = {
        "expired": lambda: signer.token(lifetime=-600, sub="alice", groups=["ml-team"]),
        "wrong issuer": lambda: signer.token(
            sub="alice", groups=["ml-team"], iss="https://evil.test"
        ),
        "wrong audience": lambda: signer.token(sub="alice", groups=["ml-team"], aud="other"),
        "tampered": lambda: tampered(signer.token(sub="bob", groups=["x"]), groups=["ml-team"]),
        "alg none": lambda: unsigned(
            iss=ISSUER, aud=AUDIENCE, sub="alice", groups=["ml-team"], exp=int(time.time()) + 600
        ),
        "unknown key": lambda: Signer(ISSUER, AUDIENCE).token(sub="alice", groups=["ml-team"]),
    }
    received = len(mock.requests())

    answer = call(setup.gateways[0], tokens[kind]())

    error = assert_openai_error(answer, 401)
    assert error["code"] == "invalid_token"
    assert len(mock.requests()) == received


def test_an_anthropic_client_gets_the_refusals_in_its_own_shape(setup: Setup) -> None:
    gateway = setup.gateways[0]

    def claude(token: str) -> None:
        # Claude Code's way with a gateway: the token as `Authorization: Bearer`.
        client = anthropic.Anthropic(
            base_url=gateway.url, api_key=None, auth_token=token, max_retries=0
        )
        client.messages.create(
            model="chat", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
        )

    with pytest.raises(anthropic.AuthenticationError) as expired:
        claude(setup.signer.token(lifetime=-600, sub="alice", groups=["ml-team"]))
    assert expired.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.PermissionDeniedError):
        claude(setup.signer.token(sub="carol", groups=["finance"]))
    claude(setup.signer.token(sub="alice", groups=["ml-team"]))


def test_a_verified_identity_no_rule_admits_gets_403(setup: Setup, mock: MockProvider) -> None:
    received = len(mock.requests())
    answer = call(setup.gateways[0], setup.signer.token(sub="carol", groups=["finance"]))
    assert assert_openai_error(answer, 403)["code"] == "identity_not_allowed"
    assert len(mock.requests()) == received


def test_identity_headers_from_a_client_have_no_effect(setup: Setup) -> None:
    forged = {
        "x-jwt-payload": "eyJzdWIiOiJhbGljZSIsImdyb3VwcyI6WyJtbC10ZWFtIl19",
        "x-user": "alice",
    }
    answer = call(setup.gateways[0], None, **forged)
    assert assert_openai_error(answer, 401)["code"] == "invalid_api_key"


def test_an_application_key_and_its_users_token_apply_together(setup: Setup) -> None:
    gateway = setup.gateways[0]
    token = setup.signer.token(sub="dave", groups=["ml-team"])
    before = len(access_log_lines(setup.config))

    answer = call(gateway, token, **{"x-api-key": GATEWAY_KEY})

    assert answer.status_code == 200, answer.text
    logged = logged_since(setup.config, before)
    assert (logged["principal_kind"], logged["key_id"], logged["subject"]) == (
        "key+jwt",
        "app",
        "user:dave",
    )
    # The key may use every model, the user only chat: together, chat.
    big = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={**CHAT, "model": "big"},
        headers={"authorization": f"Bearer {token}", "x-api-key": GATEWAY_KEY},
        timeout=30,
    )
    assert assert_openai_error(big, 403)["code"] == "model_not_allowed"


def test_each_user_has_a_budget_of_their_own_across_two_processors(setup: Setup) -> None:
    erin = setup.signer.token(sub="erin", groups=["ml-team"])
    frank = setup.signer.token(sub="frank", groups=["ml-team"])
    gateways = setup.gateways

    erin_statuses = [call(gateways[i % 2], erin).status_code for i in range(DAILY_CALLS + 2)]
    frank_statuses = [
        call(gateways[(i + 1) % 2], frank).status_code for i in range(DAILY_CALLS + 1)
    ]

    assert erin_statuses == [200] * DAILY_CALLS + [429, 429]
    assert frank_statuses == [200] * DAILY_CALLS + [429]
    refused = call(gateways[0], erin)
    assert "rule:ml-users:sub=erin" in refused.json()["error"]["message"]
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    usage = quota_usage(setup.config, subject="sub=erin")
    assert usage["rule:ml-users:sub=erin requests 1d *"]["used"] == DAILY_CALLS
    assert usage["team:ml-team requests 1d *"]["used"] >= 2 * DAILY_CALLS
