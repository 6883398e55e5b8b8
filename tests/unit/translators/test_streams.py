"""Providers' event streams (from their API references) rewritten in the client's schema,
incrementally: the same answer whatever the chunking, with tool-call argument deltas,
usage, stop reasons and mid-stream errors carried across."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from extproc.pipeline.relay import StreamRelay
from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.gemini import GEMINI
from extproc.translators.openai import OPENAI
from extproc.translators.schema import WireSchema
from tests.unit.translators.helpers import fixture, sse_payloads, translate

OPENAI_STREAM = {
    "model": "alias",
    "stream": True,
    "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "Hi"}],
}
ANTHROPIC_STREAM = {
    "model": "alias",
    "max_tokens": 100,
    "stream": True,
    "messages": [{"role": "user", "content": "Hi"}],
}


def relay(
    client: WireSchema, provider: WireSchema, body: dict[str, Any] | None = None
) -> StreamRelay:
    body = body or (OPENAI_STREAM if client is OPENAI else ANTHROPIC_STREAM)
    translation, _ = translate(client, provider, body)
    return StreamRelay(translation, started=0.0)


def run(stream: StreamRelay, raw: bytes, size: int | None = None) -> bytes:
    """The client's bytes for a provider stream fed in pieces of `size` bytes."""
    size = size or len(raw) or 1
    out = b""
    for start in range(0, max(len(raw), 1), size):
        end = start + size >= len(raw)
        out += b"".join(piece.raw for piece in stream.feed(raw[start : start + size], end=end))
    return out


@dataclass
class OpenAIView:
    """What an OpenAI client makes of a stream."""

    text: str = ""
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False


def read_openai(raw: bytes) -> OpenAIView:
    view = OpenAIView()
    for _, data in sse_payloads(raw):
        assert not view.done, "nothing after [DONE]"
        if data == "[DONE]":
            view.done = True
            continue
        if "error" in data:
            view.errors.append(data["error"])
            continue
        assert data["object"] == "chat.completion.chunk"
        if data.get("usage"):
            assert data["choices"] == []
            view.usage = data["usage"]
        for choice in data["choices"]:
            delta = choice["delta"]
            view.text += delta.get("content") or ""
            for call in delta.get("tool_calls") or ():
                entry = view.calls.setdefault(
                    call["index"], {"id": "", "name": "", "arguments": ""}
                )
                entry["id"] = call.get("id") or entry["id"]
                entry["name"] = (call.get("function") or {}).get("name") or entry["name"]
                entry["arguments"] += (call.get("function") or {}).get("arguments") or ""
            if choice["finish_reason"]:
                view.finish.append(choice["finish_reason"])
    return view


def read_anthropic(raw: bytes) -> tuple[list[str], dict[str, Any]]:
    """The event types, and the message an Anthropic client assembles from them."""
    kinds: list[str] = []
    message: dict[str, Any] = {}
    for name, data in sse_payloads(raw):
        assert name == data["type"], "the event name repeats the type"
        kinds.append(name)
        if name == "message_start":
            message = data["message"]
        elif name == "content_block_start":
            assert data["index"] == len(message["content"])
            message["content"].append(data["content_block"] | {"partial": ""})
        elif name == "content_block_delta":
            block = message["content"][data["index"]]
            delta = data["delta"]
            block["partial"] += delta.get("text") or delta.get("partial_json") or ""
        elif name == "message_delta":
            message |= data["delta"]
            message["usage"] |= data["usage"]
    for block in message.get("content", ()):
        partial = block.pop("partial")
        if block["type"] == "text":
            block["text"] = partial
        else:
            block["input"] = orjson.loads(partial or "{}")
    return kinds, message


def test_anthropic_stream_for_an_openai_client() -> None:
    view = read_openai(run(relay(OPENAI, ANTHROPIC), fixture("anthropic/stream_tool_use.sse")))

    assert view.text == "Okay, let's check the weather."
    assert view.calls == {
        0: {
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "arguments": '{"location": "San Francisco, CA"}',
        }
    }
    assert view.finish == ["tool_calls"]
    assert view.usage is not None
    assert view.usage["prompt_tokens"] == 472 + 100
    assert view.usage["completion_tokens"] == 89
    assert view.usage["prompt_tokens_details"] == {"cached_tokens": 100}
    assert view.done


def test_the_usage_chunk_only_when_the_client_asked() -> None:
    body = OPENAI_STREAM | {"stream_options": None}
    raw = run(relay(OPENAI, ANTHROPIC, body), fixture("anthropic/stream.sse"))
    view = read_openai(raw)
    assert view.usage is None and view.text == "Hello!" and view.done
    assert b'"usage"' not in raw


def test_openai_stream_with_parallel_tool_calls_for_an_anthropic_client() -> None:
    raw = run(relay(ANTHROPIC, OPENAI), fixture("openai/chat_stream_tool_calls.sse"))
    kinds, message = read_anthropic(raw)

    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 5,  # the arguments as OpenAI streamed them
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert message["content"] == [
        {
            "type": "tool_use",
            "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
            "name": "get_weather",
            "input": {"location": "Paris, France"},
        },
        {"type": "tool_use", "id": "call_Fk7Q", "name": "get_time", "input": {"zone": "CET"}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["input_tokens"] == 80
    assert message["usage"]["output_tokens"] == 24


def test_openai_text_stream_for_an_anthropic_client() -> None:
    kinds, message = read_anthropic(
        run(relay(ANTHROPIC, OPENAI), fixture("openai/chat_stream.sse"))
    )
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert message["content"] == [{"type": "text", "text": "Hello!"}]
    assert message["stop_reason"] == "end_turn"
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (9, 2)


@pytest.mark.parametrize(
    "name", ["gemini/stream_finish_every_chunk.sse", "gemini/stream_usage_at_end.sse"]
)
def test_gemini_streams_finish_once_at_the_end(name: str) -> None:
    view = read_openai(run(relay(OPENAI, GEMINI), fixture(name)))
    assert view.finish == ["stop"], "some models repeat finishReason on every chunk"
    assert view.done
    if name.endswith("usage_at_end.sse"):
        assert view.text == "Hello! How can I help you today?"
        assert view.usage is not None
        assert (view.usage["prompt_tokens"], view.usage["completion_tokens"]) == (1, 9)
    else:
        assert view.text.endswith("They lived happily ever after.")


def test_gemini_function_calls_stream_to_both_clients() -> None:
    view = read_openai(run(relay(OPENAI, GEMINI), fixture("gemini/stream_function_calls.sse")))
    assert [(call["name"], orjson.loads(call["arguments"])) for call in view.calls.values()] == [
        ("get_weather", {"location": "Paris"}),
        ("get_weather", {"location": "London"}),
    ]
    assert all(call["id"].startswith("call_") for call in view.calls.values())
    assert view.finish == ["tool_calls"]

    _, message = read_anthropic(
        run(relay(ANTHROPIC, GEMINI), fixture("gemini/stream_function_calls.sse"))
    )
    assert [block["input"] for block in message["content"]] == [
        {"location": "Paris"},
        {"location": "London"},
    ]
    assert message["stop_reason"] == "tool_use"
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (60, 20)


STREAMS = [
    (OPENAI, ANTHROPIC, "anthropic/stream_tool_use.sse"),
    (OPENAI, GEMINI, "gemini/stream_usage_at_end.sse"),
    (ANTHROPIC, OPENAI, "openai/chat_stream_tool_calls.sse"),
    (ANTHROPIC, GEMINI, "gemini/stream_function_calls.sse"),
]


@pytest.mark.parametrize(("client", "provider", "name"), STREAMS, ids=[s[2] for s in STREAMS])
def test_translation_is_the_same_at_every_chunking(
    client: WireSchema, provider: WireSchema, name: str
) -> None:
    raw = fixture(name)
    whole = run(relay(client, provider), raw)
    for size in (1, 2, 7, 64):
        pieces = run(relay(client, provider), raw, size)
        if client is OPENAI:
            assert read_openai(pieces).calls.keys() == read_openai(whole).calls.keys()
            assert read_openai(pieces).text == read_openai(whole).text
        else:
            assert read_anthropic(pieces)[0] == read_anthropic(whole)[0]


def test_each_event_goes_out_as_it_arrives() -> None:
    """Incremental: an event is written for the client as soon as its bytes are complete."""
    stream = relay(OPENAI, ANTHROPIC)
    raw = fixture("anthropic/stream.sse")
    blocks = raw.split(b"\n\n")
    start = stream.feed(blocks[0] + b"\n\n", end=False)
    assert b"".join(piece.raw for piece in start).startswith(b"data: "), (
        "message_start → role chunk"
    )
    delta = stream.feed(blocks[3] + b"\n\n", end=False)
    assert orjson.loads(delta[0].raw.removeprefix(b"data: "))["choices"][0]["delta"] == {
        "content": "Hello"
    }


def test_a_provider_error_inside_the_stream_reaches_the_client_in_its_schema() -> None:
    failing = (
        fixture("anthropic/stream.sse").split(b"event: content_block_stop")[0]
        + b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
        b'"message": "Overloaded"}}\n\n'
    )
    view = read_openai(run(relay(OPENAI, ANTHROPIC), failing))
    assert view.text == "Hello!"
    assert view.errors == [
        {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded_error"}
    ]
    assert view.done


def test_streamed_usage_is_metered_from_any_schema() -> None:
    stream = relay(ANTHROPIC, GEMINI)
    run(stream, fixture("gemini/stream_usage_at_end.sse"))
    reported = stream.usage.reported()
    assert reported is not None and (reported.input_tokens, reported.output_tokens) == (1, 9)
    assert stream.usage.done
    assert stream.usage.model == "gemini-3.1-flash-lite-preview"


def test_an_anthropic_client_gets_a_whole_sequence_even_from_an_empty_stream() -> None:
    kinds, message = read_anthropic(run(relay(ANTHROPIC, GEMINI), b""))
    assert kinds == ["message_start", "message_delta", "message_stop"]
    assert message["content"] == [] and message["stop_reason"] == "end_turn"
