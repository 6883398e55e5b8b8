"""Auth, routing, body checks and provider translation, as plain Python (no gRPC, no Envoy)."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import pytest

from extproc import errors
from extproc.config import Gateway, parse_gateway
from extproc.endpoints import MODEL_CALLS, match_endpoint
from extproc.endpoints.body import check_common, parse_body, read_model
from extproc.pipeline.auth import authenticate, digest_key
from extproc.pipeline.routing import choose_target, resolve_route
from extproc.providers import TRANSLATORS

KEY = "sk-gw-unit-test"
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
    assert authenticate({"authorization": [f"Bearer {KEY}"]}, gateway.principals).key_id == "k"
    assert authenticate({"x-api-key": [KEY], "api-key": [KEY]}, gateway.principals).key_id == "k"
    for headers in (
        {},
        {"authorization": ["Bearer nope"]},
        {"authorization": [f"Basic {KEY}"]},
        {"authorization": [f"Bearer {KEY}", "Bearer sk-other"]},
        {"authorization": [f"Bearer {KEY}\x01"]},
    ):
        with pytest.raises(errors.Unauthenticated):
            authenticate(headers, gateway.principals)


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


def test_openai_translation_rewrites_model_and_forces_options(gateway: Gateway) -> None:
    target = gateway.models["a"].targets[0]
    call = MODEL_CALLS["/v1/chat/completions"]

    upstream = TRANSLATORS["openai"](
        call, target, {"model": "a", "max_tokens": 500, "messages": []}
    )

    assert upstream.path == "/proxy/v1/chat/completions"
    assert upstream.headers == (("authorization", "Bearer sk-provider"),)
    assert upstream.body == {"model": "up-a", "max_tokens": 9, "temperature": 0, "messages": []}


def test_azure_translation_puts_the_deployment_in_the_path(gateway: Gateway) -> None:
    target = gateway.models["z"].targets[0]

    upstream = TRANSLATORS["azure"](MODEL_CALLS["/v1/embeddings"], target, {"input": "x"})

    assert upstream.path == "/openai/deployments/dep%2F1/embeddings?api-version=2024-10-21"
    assert upstream.headers == (("api-key", "sk-provider"),)


def test_anthropic_passthrough_and_schema_mismatch(gateway: Gateway) -> None:
    target = gateway.models["c"].targets[0]

    upstream = TRANSLATORS["anthropic"](MODEL_CALLS["/v1/messages"], target, {"max_tokens": 5})

    assert dict(upstream.headers) == {"anthropic-version": "2023-06-01", "x-api-key": "sk-provider"}
    with pytest.raises(errors.BadRequest):
        TRANSLATORS["anthropic"](MODEL_CALLS["/v1/chat/completions"], target, {})
    with pytest.raises(errors.BadRequest):
        TRANSLATORS["openai"](MODEL_CALLS["/v1/messages"], gateway.models["a"].targets[0], {})
