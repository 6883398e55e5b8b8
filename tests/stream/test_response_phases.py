"""The response side of one request through the processor, message by message (no Envoy):
what each answer tells Envoy to change, and what the quota counters hold once the stream
ends (read back over the processor's counters method)."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import orjson
import pytest
from google.protobuf.struct_pb2 import ListValue

from extproc.config import Gateway, parse_gateway
from extproc.counters import METHOD, SERVICE
from extproc.envoyapi.protos.envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from extproc.pipeline.auth import digest_key
from tests.stream.support import (
    body,
    exchange,
    headers,
    response_body,
    response_headers,
    set_headers,
)

KEY = "sk-gw-response-phases"
FIXTURES = Path(__file__).parent.parent / "unit/translators/fixtures"
CONFIG = f"""
providers:
  up: {{kind: openai, base_url: "http://127.0.0.1:9", api_key: "${{env:P}}"}}
  claude: {{kind: anthropic, base_url: "http://127.0.0.1:9", api_key: "${{env:P}}"}}
models:
  m: {{provider: up, model: upstream-m}}
  sonnet: {{provider: claude, model: claude-sonnet-4-5}}
keys:
  - id: k
    sha256: {digest_key(KEY)}
    models: [m, sonnet]
    limits: [{{requests: 100, per: 1h}}, {{tokens: 100000, per: 1h}}]
"""
JSON = (("content-type", "application/json"),)


@pytest.fixture(scope="module")
def gateway() -> Gateway:
    return parse_gateway(CONFIG, source=Path("r.yaml"), environ={"P": "sk-provider"})


def chat(model: str, *, stream: bool = False) -> list[ext_proc.ProcessingRequest]:
    messages = [{"role": "user", "content": "hi"}]
    payload = orjson.dumps({"model": model, "messages": messages, "stream": stream})
    request = headers(
        (":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", f"Bearer {KEY}")
    )
    return [request, body(payload)]


async def used(channel: grpc.aio.Channel, gateway: Gateway) -> dict[str, int]:
    """The key's counters (requests, tokens) in the processor's store."""
    limits = next(iter(gateway.principals.values())).limits
    names = ListValue()
    names.extend([limit.counter_at(time.time())[0] for limit in limits])
    read = channel.unary_unary(
        f"/{SERVICE}/{METHOD}",
        request_serializer=ListValue.SerializeToString,
        response_deserializer=ListValue.FromString,
    )
    values = await read(names)
    return {limit.metric: int(value) for limit, value in zip(limits, values, strict=True)}


async def test_a_json_answer_passes_with_rate_limit_headers_and_settles_on_its_usage(
    channel: grpc.aio.Channel, gateway: Gateway
) -> None:
    answer = (FIXTURES / "openai/chat_completion.json").read_bytes()
    usage = orjson.loads(answer)["usage"]

    *_, on_headers, on_body = await exchange(
        channel,
        *chat("m"),
        response_headers((":status", "200"), *JSON),
        response_body(answer),
    )

    mutation = set_headers(on_headers.response_headers.response.header_mutation)
    assert mutation["x-ratelimit-remaining-requests"] == "99"
    assert "x-ratelimit-remaining-tokens" in mutation
    assert not on_body.response_body.response.HasField("body_mutation"), "passed unchanged"
    assert await used(channel, gateway) == {
        "requests": 1,
        "tokens": usage["prompt_tokens"] + usage["completion_tokens"],
    }


async def test_an_anthropic_answer_reaches_an_openai_client_in_its_shape(
    channel: grpc.aio.Channel,
) -> None:
    answer = (FIXTURES / "anthropic/message.json").read_bytes()

    *_, on_headers, on_body = await exchange(
        channel,
        *chat("sonnet"),
        response_headers((":status", "200"), *JSON),
        response_body(answer),
    )

    assert "content-length" in on_headers.response_headers.response.header_mutation.remove_headers
    rewritten = orjson.loads(on_body.response_body.response.body_mutation.body)
    assert rewritten["object"] == "chat.completion"
    assert rewritten["choices"][0]["message"]["content"] == "Hi! My name is Claude."
    assert rewritten["choices"][0]["finish_reason"] == "stop"
    assert rewritten["usage"]["prompt_tokens"] == 2095
    assert rewritten["usage"]["completion_tokens"] == 503


async def test_a_provider_refusing_its_key_is_a_502_and_the_request_is_refunded(
    channel: grpc.aio.Channel, gateway: Gateway
) -> None:
    refusal = (
        b'{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}'
    )

    *_, on_headers, on_body = await exchange(
        channel,
        *chat("m"),
        response_headers((":status", "401"), *JSON),
        response_body(refusal),
    )

    assert set_headers(on_headers.response_headers.response.header_mutation)[":status"] == "502"
    error = orjson.loads(on_body.response_body.response.body_mutation.body)["error"]
    assert error["code"] == "provider_auth_failed"
    assert await used(channel, gateway) == {"requests": 0, "tokens": 0}


async def test_a_stream_is_relayed_chunk_by_chunk_without_the_usage_the_gateway_asked_for(
    channel: grpc.aio.Channel, gateway: Gateway
) -> None:
    stream = (FIXTURES / "openai/chat_stream.sse").read_bytes()
    chunks = [stream[i : i + 61] for i in range(0, len(stream), 61)]
    body_messages = [
        response_body(chunk, end=index == len(chunks) - 1) for index, chunk in enumerate(chunks)
    ]

    _, _, on_headers, *on_chunks = await exchange(
        channel,
        *chat("m", stream=True),
        response_headers((":status", "200"), ("content-type", "text/event-stream")),
        *body_messages,
    )

    assert on_headers.mode_override.response_body_mode  # the body comes chunk by chunk
    relayed = b"".join(
        answer.response_body.response.body_mutation.streamed_response.body for answer in on_chunks
    )
    events = [line for line in relayed.split(b"\n\n") if line]
    assert events[-1] == b"data: [DONE]"
    assert b'"usage"' not in relayed, "the client did not ask for usage"
    assert relayed == stream.replace(_usage_event(stream), b"")
    assert await used(channel, gateway) == {"requests": 1, "tokens": 9 + 2}


async def test_a_burst_of_events_sends_its_first_event_before_the_rest(
    channel: grpc.aio.Channel, gateway: Gateway
) -> None:
    stream = (FIXTURES / "openai/chat_stream.sse").read_bytes()
    first_event = stream[: stream.index(b"\n\n") + 2]

    _, _, _, *on_burst = await exchange(
        channel,
        *chat("m", stream=True),
        response_headers((":status", "200"), ("content-type", "text/event-stream")),
        response_body(stream, end=True),
    )

    relayed = [answer.response_body.response.body_mutation.streamed_response for answer in on_burst]
    assert relayed[0].body == first_event and not relayed[0].end_of_stream
    assert b"".join(part.body for part in relayed) == stream.replace(_usage_event(stream), b"")
    assert relayed[-1].end_of_stream
    assert await used(channel, gateway) == {"requests": 1, "tokens": 9 + 2}


async def test_a_translated_burst_sends_the_first_event_the_client_sees_before_the_rest(
    channel: grpc.aio.Channel,
) -> None:
    stream = (FIXTURES / "anthropic/stream.sse").read_bytes()

    _, _, _, *on_burst = await exchange(
        channel,
        *chat("sonnet", stream=True),
        response_headers((":status", "200"), ("content-type", "text/event-stream")),
        response_body(stream, end=True),
    )

    relayed = [answer.response_body.response.body_mutation.streamed_response for answer in on_burst]
    first = relayed[0].body.split(b"\n\n")
    assert first[0].startswith(b"data: {") and first[1:] == [b""], "one OpenAI chunk"
    assert b'"role":"assistant"' in first[0]
    assert b"".join(part.body for part in relayed).endswith(b"data: [DONE]\n\n")


def _usage_event(stream: bytes) -> bytes:
    (event,) = [block + b"\n\n" for block in stream.split(b"\n\n") if b'"usage"' in block]
    return event
