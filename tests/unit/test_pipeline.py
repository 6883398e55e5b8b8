"""Auth, routing, body checks and provider translation, as plain Python (no gRPC, no Envoy)."""

from __future__ import annotations

import collections
import random
from pathlib import Path
from typing import Any

import pytest

from extproc import errors
from extproc.config import ConfigError, Gateway, parse_gateway
from extproc.endpoints import MODEL_CALLS, match_endpoint
from extproc.endpoints.body import check_common, parse_body, read_model
from extproc.pipeline.auth import authenticate, digest_key, expiry_notice
from extproc.pipeline.routing import choose_target, resolve_route
from extproc.pipeline.upstream import prepare_upstream
from extproc.providers import Location

KEY = "sk-gw-unit-test"
NOW = 1_800_000_000.0
"""2027-01-15T08:00:00Z: a fixed clock for key windows."""
CONFIG = f"""
providers:
  oai: {{kind: openai, base_url: "https://api.example.com/proxy/", api_key: "${{env:K}}"}}
  az: {{kind: azure, base_url: "https://r.openai.azure.com", api_key: "${{env:K}}",
        api_version: 2024-10-21}}
  ant: {{kind: anthropic, base_url: "https://api.anthropic.com", api_key: "${{env:K}}"}}
models:
  a: {{provider: oai, model: up-a, options: {{max_tokens: 9, temperature: 0}}}}
  z: {{provider: az, model: "dep/1"}}
  c: {{provider: ant, model: claude-x}}
  w:
    targets:
      - {{provider: oai, model: one, weight: 1}}
      - {{provider: oai, model: two, weight: 3}}
      - {{provider: oai, model: never, weight: 0}}
keys:
  - {{id: k, sha256: {digest_key(KEY)}, models: [a, w, z, c]}}
  - {{id: other, sha256: {digest_key("sk-other")}, models: [a]}}
"""


@pytest.fixture(scope="module")
def gateway() -> Gateway:
    return parse_gateway(CONFIG, source=Path("t.yaml"), environ={"K": "sk-provider"})


def test_every_error_class_has_an_openai_shape() -> None:
    classes = [errors.GatewayError, *errors.GatewayError.__subclasses__()]
    assert len({(cls.status, cls.type) for cls in classes}) == len(classes), "distinct classes"
    for cls in classes:
        body = cls("message").to_body()
        assert body.startswith(b'{"error":{"message":"message","type":"' + cls.type.encode())


def test_authentication(gateway: Gateway) -> None:
    assert authenticate({"authorization": [f"Bearer {KEY}"]}, gateway.principals, NOW).key_id == "k"
    assert (
        authenticate({"x-api-key": [KEY], "api-key": [KEY]}, gateway.principals, NOW).key_id == "k"
    )
    for headers in (
        {},
        {"authorization": ["Bearer nope"]},
        {"authorization": [f"Basic {KEY}"]},
        {"authorization": [f"Bearer {KEY}", "Bearer sk-other"]},
        {"authorization": [f"Bearer {KEY}\x01"]},
    ):
        with pytest.raises(errors.Unauthenticated):
            authenticate(headers, gateway.principals, NOW)


ROTATION = f"""
providers:
  oai: {{kind: openai, base_url: "https://api.example.com", api_key: "${{env:K}}"}}
models:
  a: {{provider: oai, model: up-a}}
keys:
  - id: rotating
    models: [a]
    digests:
      - {{sha256: {digest_key("sk-new")}}}
      - {{sha256: {digest_key("sk-old")}, expires_at: 2027-01-15T08:00:00Z}}
  - id: later
    models: [a]
    sha256: {digest_key("sk-later")}
    not_before: 2027-01-15T09:00:00+01:00
    expires_at: "2027-02-01T00:00:00Z"
"""


def test_a_rotated_key_stays_valid_until_its_expiry_to_the_second() -> None:
    gateway = parse_gateway(ROTATION, source=Path("t.yaml"), environ={"K": "sk-provider"})

    def key(value: str, now: float) -> str:
        return authenticate({"authorization": [f"Bearer {value}"]}, gateway.principals, now).key_id

    assert key("sk-old", NOW - 0.001) == key("sk-new", NOW - 0.001) == "rotating"
    assert key("sk-new", NOW) == "rotating"
    with pytest.raises(errors.Unauthenticated) as expired:
        key("sk-old", NOW)
    assert expired.value.code == "key_expired"
    assert expired.value.message == (
        "This API key expired at 2027-01-15T08:00:00Z; use its replacement."
    )
    # The same instant written with an offset is the same instant.
    assert key("sk-later", NOW) == "later"
    with pytest.raises(errors.Unauthenticated) as early:
        key("sk-later", NOW - 1)
    assert early.value.code == "key_not_yet_valid"


def test_a_key_near_its_expiry_is_flagged_on_answers() -> None:
    gateway = parse_gateway(ROTATION, source=Path("t.yaml"), environ={"K": "sk-provider"})
    old = gateway.principals[digest_key("sk-old")]
    week = gateway.key_expiry_notice
    assert week == 7 * 86400
    assert expiry_notice(old, NOW - week - 1, week) == []
    assert expiry_notice(old, NOW - week, week) == [
        ("x-extproc-key-expires-at", "2027-01-15T08:00:00Z")
    ]
    assert expiry_notice(gateway.principals[digest_key("sk-new")], NOW, week) == []


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("{id: x, models: [a]}", ("keys.0", "give the key's sha256, or its digests (not both)")),
        (
            f"{{id: x, models: [a], sha256: {'a' * 64}, digests: [{{sha256: {'b' * 64}}}]}}",
            ("keys.0", "give the key's sha256, or its digests (not both)"),
        ),
        (
            f"{{id: x, models: [a], sha256: {'a' * 64}, expires_at: 2027-01-01T00:00:00}}",
            ("keys.0.expires_at", "must give its offset (2026-12-05T00:00:00Z, or +01:00)"),
        ),
        (
            f"{{id: x, models: [a], sha256: {'a' * 64}, expires_at: 'soon'}}",
            ("keys.0.expires_at", "must be an ISO 8601 instant such as 2026-12-05T00:00:00Z"),
        ),
        (
            f"{{id: x, models: [a], digests: [{{sha256: {'a' * 64},"
            " not_before: 2027-01-02T00:00:00Z, expires_at: 2027-01-01T00:00:00Z}]}",
            ("keys.0.digests.0", "expires_at must be after not_before"),
        ),
        (
            f"{{id: x, models: [a], digests: [{{sha256: {'a' * 64}}}, {{sha256: {'a' * 64}}}]}}",
            (
                "keys.0.digests.1.sha256",
                "this digest is already given (a key is known by its digest alone)",
            ),
        ),
    ],
)
def test_key_windows_and_digests_are_checked(entry: str, problem: tuple[str, str]) -> None:
    config = f"""
providers:
  oai: {{kind: openai, base_url: "https://api.example.com", api_key: "${{env:K}}"}}
models:
  a: {{provider: oai, model: up-a}}
keys:
  - {entry}
"""
    with pytest.raises(ConfigError) as raised:
        parse_gateway(config, source=Path("t.yaml"), environ={"K": "sk-provider"})
    assert raised.value.problems == [problem]


def test_routing_refuses_unknown_and_forbidden_models(gateway: Gateway) -> None:
    other = gateway.principals[digest_key("sk-other")]
    with pytest.raises(errors.NotFound) as unknown:
        resolve_route(gateway.models, other, "gpt-9")
    assert unknown.value.code == "model_not_found"
    with pytest.raises(errors.PermissionDenied):
        resolve_route(gateway.models, other, "w")


def test_weighted_choice_follows_weights_and_skips_zero(gateway: Gateway) -> None:
    rng = random.Random(7)
    picks = collections.Counter(choose_target(gateway.models["w"], rng).model for _ in range(4000))
    assert picks["never"] == 0
    assert 0.70 < picks["two"] / 4000 < 0.80


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty"),
        (b"{", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b"\xc3\x28", "not valid JSON"),
    ],
)
def test_parse_body_errors(raw: bytes, message: str) -> None:
    with pytest.raises(errors.BadRequest) as raised:
        parse_body(raw)
    assert message in raised.value.message


def test_model_and_common_checks() -> None:
    assert read_model({"model": "gpt-4o"}) == "gpt-4o"
    for bad in ({}, {"model": 1}, {"model": ""}, {"model": "a\nb"}, {"model": "m" * 257}):
        with pytest.raises(errors.BadRequest):
            read_model(bad)
    for bad in ({"stream": "true"}, {"api_key": "x"}, {"extra_headers": {}}):
        with pytest.raises(errors.BadRequest):
            check_common(bad)


def test_endpoint_matching() -> None:
    assert match_endpoint("POST", "/v1/chat/completions?x=1") is MODEL_CALLS["/v1/chat/completions"]
    with pytest.raises(errors.MethodNotAllowed):
        match_endpoint("GET", "/v1/embeddings")
    with pytest.raises(errors.NotFound):
        match_endpoint("POST", "/v2/chat/completions")


def upstream(
    gateway: Gateway, alias: str, path: str, body: dict[str, Any]
) -> tuple[Location, dict[str, Any]]:
    """Where a call goes and what it sends, as the request path prepares it."""
    target = gateway.models[alias].targets[0]
    call = MODEL_CALLS[path]
    prepared = prepare_upstream(call, target, body, default_max_tokens=100)
    location = prepared.api.locate(call.operation, target, prepared.translation.stream)
    return location, prepared.body


def test_openai_upstream_gets_its_model_and_the_forced_options(gateway: Gateway) -> None:
    location, body = upstream(
        gateway, "a", "/v1/chat/completions", {"model": "a", "max_tokens": 500, "messages": []}
    )

    assert location.path == "/proxy/v1/chat/completions"
    assert location.headers == (("authorization", "Bearer sk-provider"),)
    assert body == {"model": "up-a", "max_tokens": 9, "temperature": 0, "messages": []}


def test_azure_puts_the_deployment_in_the_path(gateway: Gateway) -> None:
    location, _ = upstream(gateway, "z", "/v1/embeddings", {"input": "x"})

    assert location.path == "/openai/deployments/dep%2F1/embeddings?api-version=2024-10-21"
    assert location.headers == (("api-key", "sk-provider"),)


def test_anthropic_gets_its_headers_and_every_schema_reaches_it(gateway: Gateway) -> None:
    location, body = upstream(gateway, "c", "/v1/messages", {"max_tokens": 5, "messages": []})
    assert dict(location.headers) == {"anthropic-version": "2023-06-01", "x-api-key": "sk-provider"}
    assert body == {"model": "claude-x", "max_tokens": 5, "messages": []}

    chat = {"messages": [{"role": "user", "content": "hi"}]}
    location, body = upstream(gateway, "c", "/v1/chat/completions", chat)
    assert location.path == "/v1/messages"
    assert body == {
        "model": "claude-x",
        "max_tokens": 100,  # Anthropic requires it: the cap quotas use
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    with pytest.raises(errors.BadRequest) as refused:
        upstream(gateway, "c", "/v1/embeddings", {"input": "x"})
    assert refused.value.code == "unsupported_endpoint"
