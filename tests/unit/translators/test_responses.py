"""OpenAI's Responses API as a client schema: requests read into the neutral form, answers and
event streams written back, and a provider's Responses stream read for its usage."""

from __future__ import annotations

import pytest
from mockprovider.responses import events as provider_events
from mockprovider.script import Call, Reply

from extproc.errors import BadRequest
from extproc.translators.ir import (
    ChatAnswer,
    ChatRequest,
    Finish,
    Image,
    Message,
    OutputFormat,
    StreamEnd,
    StreamStart,
    Text,
    TextDelta,
    Tool,
    ToolArgumentsDelta,
    ToolCall,
    ToolCallStart,
    ToolResult,
    UsageReport,
)
from extproc.translators.responses import RESPONSES
from extproc.translators.responses.stream import StreamDecoder
from extproc.usage import Usage
from tests.unit.translators.helpers import sse_payloads

assert RESPONSES.client is not None
CLIENT = RESPONSES.client
PIXEL = "data:image/png;base64,iVBORw0KGgo="


def test_input_items_become_turns_with_calls_paired_and_reasoning_dropped() -> None:
    body = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": [{"type": "input_text", "text": "Use tools."}]},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is here?"},
                    {"type": "input_image", "image_url": PIXEL},
                ],
            },
            {"type": "reasoning", "id": "rs_1", "encrypted_content": "opaque"},
            {"type": "function_call", "call_id": "c1", "name": "look", "arguments": '{"x":1}'},
            {"type": "function_call_output", "call_id": "c1", "output": "a cat"},
        ],
    }

    request = CLIENT.parse_chat(body, "anthropic")

    assert request.system == ("Be brief.", "Use tools.")
    assert request.messages == (
        Message(
            "user", (Text("What is here?"), Image(media_type="image/png", data="iVBORw0KGgo="))
        ),
        Message("assistant", (ToolCall("c1", "look", {"x": 1}),)),
        Message("user", (ToolResult("c1", "look", (Text("a cat"),)),)),
    )


def test_output_settings_and_structured_output_are_carried() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = {
        "model": "m",
        "input": "Hi",
        "max_output_tokens": 300,
        "temperature": 0.2,
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema}},
        "tool_choice": {"type": "function", "name": "look"},
        "tools": [{"type": "function", "name": "look", "parameters": schema}],
    }

    request = CLIENT.parse_chat(body, "gemini")

    assert (request.max_tokens, request.temperature) == (300, 0.2)
    assert request.output_format == OutputFormat("json_schema", schema, "answer")
    assert request.tool_choice is not None and request.tool_choice.name == "look"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]},
            "input.0.call_id",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools.0"),
        ({"background": True}, "background"),
        ({"text": {"verbosity": "low"}}, "text.verbosity"),
    ],
)
def test_what_cannot_be_carried_is_refused_by_name(extra: dict[str, object], param: str) -> None:
    with pytest.raises(BadRequest) as refused:
        CLIENT.parse_chat({"model": "m", "input": "Hi"} | extra, "anthropic")
    assert refused.value.param == param


def test_namespace_tools_are_flattened_and_named_back_in_the_answer() -> None:
    body = {
        "model": "m",
        "input": "Close a1",
        "tools": [
            {
                "type": "namespace",
                "name": "agents",
                "tools": [{"type": "function", "name": "close", "parameters": {}}],
            }
        ],
    }
    request = CLIENT.parse_chat(body, "anthropic")
    assert request.tools == (Tool("agents__close", None, {}, namespace="agents"),)

    answer = ChatAnswer(
        "r1", "m", (ToolCall("c1", "agents__close", {"id": "a1"}),), "tool_calls", Usage(5, 2)
    )
    [item] = CLIENT.build_chat_answer(answer, request)["output"]

    assert (item["namespace"], item["name"], item["arguments"]) == (
        "agents",
        "close",
        '{"id":"a1"}',
    )


def test_a_stream_is_written_as_numbered_items_opened_filled_and_closed() -> None:
    encoder = CLIENT.encoder(ChatRequest((), stream=True), "claude")
    neutral = [
        StreamStart("msg_1", "claude"),
        TextDelta("Let me "),
        TextDelta("look."),
        ToolCallStart(0, "c1", "look"),
        ToolArgumentsDelta(0, '{"x":'),
        ToolArgumentsDelta(0, "1}"),
        Finish("tool_calls"),
        UsageReport(Usage(10, 7, cached_input_tokens=4, reasoning_tokens=2)),
        StreamEnd(),
    ]

    events = sse_payloads(b"".join(encoder.encode(event) for event in neutral))

    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(name == data["type"] for name, data in events)
    final = events[-1][1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][0]["content"][0]["text"] == "Let me look."
    assert final["output"][1]["arguments"] == '{"x":1}'
    assert final["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 17,
    }


def test_an_answer_cut_at_its_cap_ends_incomplete() -> None:
    encoder = CLIENT.encoder(ChatRequest((), stream=True), "m")
    raw = b"".join(
        encoder.encode(event)
        for event in (StreamStart("r", "m"), TextDelta("Hel"), Finish("length"), StreamEnd())
    )
    name, data = sse_payloads(raw)[-1]
    assert name == "response.incomplete"
    assert data["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_providers_stream_is_read_for_text_calls_and_usage() -> None:
    text_reply = Reply(
        words=["Hi ", "there"], calls=[], finish="stop", stop_sequence=None, input_tokens=9
    )
    call = Call("c1", "look", {"x": 1})
    call_reply = Reply(
        words=[], calls=[call], finish="tool_calls", stop_sequence=None, input_tokens=9
    )
    body = {"model": "gpt", "input": "Hi", "store": False}

    def decoded(reply: Reply) -> list[object]:
        decoder = StreamDecoder("gpt")
        return [
            event
            for _, data in sse_payloads(b"".join(provider_events(body, reply, {})))
            for event in decoder.decode(data)
        ]

    text_events = decoded(text_reply)
    assert [e.text for e in text_events if isinstance(e, TextDelta)] == ["Hi ", "there"]
    assert text_events[-3:] == [Finish("stop"), UsageReport(Usage(9, 2)), StreamEnd()]
    call_events = decoded(call_reply)
    assert ToolCallStart(0, "c1", "look") in call_events
    fragments = [e.fragment for e in call_events if isinstance(e, ToolArgumentsDelta)]
    assert "".join(fragments) == '{"x":1}'
    assert Finish("tool_calls") in call_events
