"""The processor over real gRPC, driven by scripted ProcessingRequest sequences (no Envoy)."""

from __future__ import annotations

from pathlib import Path

import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.config import Gateway, parse_gateway
from extproc.envoyapi.protos.envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from extproc.pipeline.auth import digest_key
from tests.stream.support import body, exchange, headers

KEY = "sk-gw-stream-test"
PROVIDER_KEY = "sk-provider-stream"
CONFIG = f"""
listen: {{max_request_body: 8MiB}}
providers:
  up: {{kind: openai, base_url: "http://127.0.0.1:9", api_key: "${{env:P}}"}}
  legacy: {{kind: openai, base_url: "http://127.0.0.1:9", stream_usage: false}}
models:
  m: {{provider: up, model: upstream-m, options: {{max_tokens: 7}}}}
  old: {{provider: legacy, model: o}}
  hidden: {{provider: up, model: h}}
keys:
  - {{id: k, sha256: {digest_key(KEY)}, models: [m, old]}}
"""


CHAT_HEADERS = headers(
    (":method", "POST"),
    (":path", "/v1/chat/completions"),
    ("authorization", f"Bearer {KEY}"),
    ("x-extproc-route", "spoofed"),
)


@pytest.fixture(scope="module")
def gateway() -> Gateway:
    return parse_gateway(CONFIG, source=Path("s.yaml"), environ={"P": PROVIDER_KEY})


def mutation(response: ext_proc.ProcessingResponse) -> dict[str, str]:
    common = response.request_body.response
    return {h.header.key: h.header.raw_value.decode() for h in common.header_mutation.set_headers}


async def test_chat_request_is_rewritten_for_the_provider(channel: grpc.aio.Channel) -> None:
    payload = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})

    first, second = await exchange(channel, CHAT_HEADERS, body(payload))

    assert first.WhichOneof("response") == "request_headers"
    common = second.request_body.response
    assert common.status == ext_proc.CommonResponse.CONTINUE
    assert common.clear_route_cache
    new_body = common.body_mutation.body
    assert orjson.loads(new_body) == {
        "model": "upstream-m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 7,
    }
    set_headers = mutation(second)
    assert set_headers["content-length"] == str(len(new_body))
    assert set_headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert set_headers["x-extproc-route"] == "up"
    assert set_headers[":path"] == "/v1/chat/completions"
    assert "x-extproc-route" not in common.header_mutation.remove_headers, "overwritten instead"


@pytest.mark.parametrize(("model", "asked"), [("m", True), ("old", False)])
async def test_streams_ask_for_usage_unless_the_provider_rejects_it(
    channel: grpc.aio.Channel, model: str, asked: bool
) -> None:
    messages = [{"role": "user", "content": "hi"}]
    payload = orjson.dumps({"model": model, "stream": True, "messages": messages})
    _, second = await exchange(channel, CHAT_HEADERS, body(payload))
    sent = orjson.loads(second.request_body.response.body_mutation.body)
    assert ("stream_options" in sent) is asked


async def test_missing_key_is_a_local_401_and_later_phases_pass(channel: grpc.aio.Channel) -> None:
    no_key = headers((":method", "POST"), (":path", "/v1/chat/completions"))

    reply, after = await exchange(channel, no_key, body(b"{}"))

    assert reply.immediate_response.status.code == 401
    error = orjson.loads(reply.immediate_response.body)["error"]
    assert error["code"] == "invalid_api_key"
    assert after.WhichOneof("response") == "request_body"
    assert not after.request_body.HasField("response")


async def test_models_are_answered_locally(channel: grpc.aio.Channel) -> None:
    listing = headers(
        (":method", "GET"), (":path", "/v1/models"), ("x-api-key", KEY), end_of_stream=True
    )

    (reply,) = await exchange(channel, listing)

    assert reply.immediate_response.status.code == 200
    assert [m["id"] for m in orjson.loads(reply.immediate_response.body)["data"]] == ["m", "old"]


async def test_post_without_body_is_400(channel: grpc.aio.Channel) -> None:
    no_body = headers(
        (":method", "POST"), (":path", "/v1/embeddings"), ("api-key", KEY), end_of_stream=True
    )

    (reply,) = await exchange(channel, no_body)

    assert reply.immediate_response.status.code == 400


async def test_five_megabyte_prompt_fits_the_grpc_limits(channel: grpc.aio.Channel) -> None:
    prompt = "y" * (5 * 1024 * 1024)
    payload = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}]})

    _, second = await exchange(channel, CHAT_HEADERS, body(payload))

    assert len(second.request_body.response.body_mutation.body) > len(prompt)


async def test_health_service_reports_serving(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest())
    assert response.status == health_pb2.HealthCheckResponse.SERVING
