"""Providers' JSON answers and errors (from their API references) in each client's schema:
content, tool calls, stop reasons, usage with cached and reasoning tokens."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest

from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.gemini import GEMINI
from extproc.translators.ir import ChatAnswer, ChatRequest, StopReason, Text
from extproc.translators.openai import OPENAI
from extproc.translators.responses import RESPONSES
from extproc.translators.schema import WireSchema
from extproc.usage import Usage
from tests.unit.translators.helpers import fixture, fixture_json, translate

CHAT = {"model": "alias", "messages": [{"role": "user", "content": "Hi"}]}
MESSAGE = {"model": "alias", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}
ESTIMATE = Usage(1000, 1000)


def answer(client: WireSchema, provider: WireSchema, payload: dict[str, Any]) -> dict[str, Any]:
    body = CHAT if client is OPENAI else MESSAGE
    translation, _ = translate(client, provider, body)
    return orjson.loads(translation.answer(payload, ESTIMATE))  # type: ignore[no-any-return]


def test_anthropic_answer_for_an_openai_client() -> None:
    reply = answer(OPENAI, ANTHROPIC, fixture_json("anthropic/message_tool_use.json"))

    assert reply["object"] == "chat.completion"
    assert reply["model"] == "claude-opus-4-1-20250805"
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert (
        choice["message"]["content"] == "I'll check the current weather in San Francisco for you."
    )
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function",
            "function": {
                "name": "get_weather",
                "arguments": '{"location":"San Francisco, CA","unit":"celsius"}',
            },
        }
    ]
    # Anthropic's input_tokens leaves cache reads and writes out; OpenAI's prompt counts all.
    assert reply["usage"] == {
        "prompt_tokens": 45 + 300 + 1200,
        "completion_tokens": 92,
        "total_tokens": 45 + 300 + 1200 + 92,
        "prompt_tokens_details": {"cached_tokens": 1200},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_openai_answer_for_an_anthropic_client() -> None:
    reply = answer(ANTHROPIC, OPENAI, fixture_json("openai/chat_completion_tool_calls.json"))

    assert reply == {
        "id": "chatcmpl-abc123",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o-mini",
        "content": [
            {
                "type": "tool_use",
                "id": "call_abc123",
                "name": "get_current_weather",
                "input": {"location": "Boston, MA"},
            }
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 82 - 64,
            "output_tokens": 17,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 64,
        },
    }


@pytest.mark.parametrize("client", [OPENAI, ANTHROPIC], ids=lambda schema: schema.name)
def test_gemini_text_answer_counts_thinking_as_output(client: WireSchema) -> None:
    reply = answer(client, GEMINI, fixture_json("gemini/generate_content.json"))

    text = "AI learns patterns from data to make predictions or decisions."
    if client is OPENAI:
        assert reply["choices"][0]["message"]["content"] == text
        assert reply["choices"][0]["finish_reason"] == "stop"
        assert reply["model"] == "gemini-2.5-flash"
        assert reply["usage"]["completion_tokens"] == 12 + 992
        assert reply["usage"]["completion_tokens_details"] == {"reasoning_tokens": 992}
    else:
        assert reply["content"] == [{"type": "text", "text": text}]
        assert reply["stop_reason"] == "end_turn"
        assert reply["usage"]["output_tokens"] == 12 + 992


def test_gemini_function_call_becomes_a_tool_call_with_an_id() -> None:
    reply = answer(OPENAI, GEMINI, fixture_json("gemini/generate_content_function_call.json"))

    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls", "Gemini says STOP; the call decides"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "schedule_meeting"
    assert orjson.loads(call["function"]["arguments"])["attendees"] == ["Bob", "Alice"]
    assert reply["usage"]["prompt_tokens_details"] == {"cached_tokens": 64}


def test_an_answer_without_usage_carries_the_gateways_estimate() -> None:
    payload = fixture_json("openai/chat_completion.json")
    del payload["usage"]
    reply = answer(ANTHROPIC, OPENAI, payload)
    assert reply["usage"]["input_tokens"] == ESTIMATE.input_tokens
    assert reply["usage"]["output_tokens"] == ESTIMATE.output_tokens


def test_malformed_tool_arguments_from_a_provider_are_a_502() -> None:
    payload = fixture_json("openai/chat_completion_tool_calls.json")
    payload["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "{not json"
    translation, _ = translate(ANTHROPIC, OPENAI, MESSAGE)
    with pytest.raises(Exception) as raised:
        translation.answer(payload, ESTIMATE)
    assert getattr(raised.value, "status", None) == 502


OPENAI_FINISH = ["stop", "length", "tool_calls", "content_filter"]
ANTHROPIC_STOPS = ["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"]


@pytest.mark.parametrize(
    ("anthropic", "openai"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_anthropic_stop_reasons_in_openai_words(anthropic: str, openai: str) -> None:
    payload = fixture_json("anthropic/message.json") | {"stop_reason": anthropic}
    assert answer(OPENAI, ANTHROPIC, payload)["choices"][0]["finish_reason"] == openai


@pytest.mark.parametrize(
    ("openai", "anthropic"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_openai_finish_reasons_in_anthropic_words(openai: str, anthropic: str) -> None:
    payload = fixture_json("openai/chat_completion.json")
    payload["choices"][0]["finish_reason"] = openai
    assert answer(ANTHROPIC, OPENAI, payload)["stop_reason"] == anthropic


@pytest.mark.parametrize(
    ("gemini", "openai"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ],
)
def test_gemini_finish_reasons(gemini: str, openai: str) -> None:
    payload = fixture_json("gemini/generate_content.json")
    payload["candidates"][0]["finishReason"] = gemini
    assert answer(OPENAI, GEMINI, payload)["choices"][0]["finish_reason"] == openai


def test_a_stop_sequence_reaches_anthropic_clients_with_its_value() -> None:
    payload = fixture_json("anthropic/message.json") | {
        "stop_reason": "stop_sequence",
        "stop_sequence": "END",
    }
    parsed = ANTHROPIC.provider.parse_chat_answer(payload, "m")
    assert parsed.stop == "stop_sequence"
    assert ANTHROPIC.client is not None
    rebuilt = ANTHROPIC.client.build_chat_answer(parsed, ChatRequest(()))
    assert (rebuilt["stop_reason"], rebuilt["stop_sequence"]) == ("stop_sequence", "END")


def test_every_stop_reason_has_a_word_in_every_client_schema() -> None:
    reasons: list[StopReason] = [
        "stop",
        "length",
        "tool_calls",
        "stop_sequence",
        "content_filter",
        "other",
    ]
    for schema in (OPENAI, ANTHROPIC, RESPONSES):
        assert schema.client is not None
        for reason in reasons:
            built = schema.client.build_chat_answer(
                ChatAnswer("id", "m", (Text("x"),), reason, Usage(1, 1)), ChatRequest(())
            )
            assert built, (schema.name, reason)


def test_gemini_embeddings_for_an_openai_client_in_floats_and_base64() -> None:
    payload = fixture_json("gemini/batch_embed_contents.json")
    body = {"model": "alias", "input": ["one", "two"]}
    translation, _ = translate(OPENAI, GEMINI, body, operation="embeddings", model="embed-1")
    reply = orjson.loads(translation.answer(payload, Usage(6, 0)))

    assert [item["embedding"] for item in reply["data"]] == [
        [0.012961149, -0.005378914, 0.0025423474],
        [-0.0092731, 0.0160134, -0.0034121],
    ]
    assert reply["usage"] == {"prompt_tokens": 6, "total_tokens": 6}, "Gemini reports none"

    translation, _ = translate(
        OPENAI, GEMINI, body | {"encoding_format": "base64"}, operation="embeddings"
    )
    encoded = orjson.loads(translation.answer(payload, Usage(6, 0)))["data"][0]["embedding"]
    values = struct.unpack("<3f", base64.b64decode(encoded))
    assert values == pytest.approx([0.012961149, -0.005378914, 0.0025423474])


# Errors.


def client_error(client: WireSchema, provider: WireSchema, status: int, body: bytes) -> Any:
    translation, _ = translate(client, provider, CHAT if client is OPENAI else MESSAGE)
    error = translation.error(status, body)
    assert client.client is not None
    return error, orjson.loads(client.client.build_error(error))


def test_anthropic_error_for_an_openai_client() -> None:
    error, body = client_error(OPENAI, ANTHROPIC, 529, fixture("anthropic/error_overloaded.json"))
    assert body == {
        "error": {
            "message": "Overloaded",
            "type": "server_error",
            "param": None,
            "code": "overloaded_error",
        }
    }
    assert not error.credentials_refused


def test_openai_error_for_an_anthropic_client() -> None:
    _, body = client_error(ANTHROPIC, OPENAI, 429, fixture("openai/error_rate_limit.json"))
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"].startswith("Rate limit reached for gpt-4o")


def test_gemini_errors_for_both_clients() -> None:
    exhausted = fixture("gemini/error_resource_exhausted.json")
    _, openai = client_error(OPENAI, GEMINI, 429, exhausted)
    assert openai["error"]["type"] == "rate_limit_exceeded"
    assert openai["error"]["code"] == "RESOURCE_EXHAUSTED"
    _, anthropic = client_error(ANTHROPIC, GEMINI, 429, exhausted)
    assert anthropic["error"]["type"] == "rate_limit_error"


def test_a_key_gemini_refuses_is_the_gateways_credentials_refused() -> None:
    error, _ = client_error(OPENAI, GEMINI, 400, fixture("gemini/error_api_key_invalid.json"))
    assert error.credentials_refused
    plain, _ = client_error(OPENAI, GEMINI, 400, b'{"error": {"code": 400, "message": "bad"}}')
    assert not plain.credentials_refused


@pytest.mark.parametrize("provider", [OPENAI, ANTHROPIC, GEMINI], ids=lambda s: s.name)
def test_text_and_html_error_bodies_become_messages(provider: WireSchema) -> None:
    error, body = client_error(ANTHROPIC, provider, 503, b"<html>upstream connect error</html>")
    assert error.status == 503
    assert "upstream connect error" in body["error"]["message"]


def test_native_errors_are_recognised_so_they_pass_unchanged() -> None:
    assert OPENAI.client is not None and ANTHROPIC.client is not None
    assert OPENAI.client.is_native_error(fixture("openai/error_rate_limit.json"))
    assert not OPENAI.client.is_native_error(fixture("anthropic/error_overloaded.json"))
    assert ANTHROPIC.client.is_native_error(fixture("anthropic/error_overloaded.json"))
    assert not ANTHROPIC.client.is_native_error(fixture("openai/error_rate_limit.json"))
