"""Bedrock's Converse API as a provider schema: every client's request written as a Converse
body, its answers and ConverseStream events read back (not served by a provider kind yet)."""

from __future__ import annotations

import orjson
import pytest

from extproc.errors import BadRequest
from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.bedrock import BEDROCK
from extproc.translators.bedrock.stream import StreamDecoder
from extproc.translators.ir import (
    Finish,
    StreamEnd,
    StreamFailed,
    TextDelta,
    ToolArgumentsDelta,
    ToolCallStart,
    UsageReport,
)
from extproc.translators.openai import OPENAI
from extproc.translators.schema import WireSchema
from extproc.usage import Usage
from tests.unit.translators.helpers import DEFAULT_CAP, translate

WEATHER = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
}
PIXEL = "data:image/png;base64,iVBORw0KGgo="


def test_an_openai_chat_becomes_a_converse_body() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": PIXEL}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
        ],
        "tools": [WEATHER],
        "tool_choice": "required",
        "temperature": 0.5,
        "stop": ["END"],
    }

    translation, converse = translate(OPENAI, BEDROCK, body)

    assert translation.translated and "model" not in converse
    assert converse["system"] == [{"text": "Be brief."}]
    assert converse["messages"] == [
        {
            "role": "user",
            "content": [
                {"text": "Weather here?"},
                {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
            ],
        },
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "c1", "name": "weather", "input": {}}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "c1",
                        "content": [{"text": "Sunny"}],
                        "status": "success",
                    }
                }
            ],
        },
    ]
    assert converse["inferenceConfig"] == {
        "maxTokens": DEFAULT_CAP,
        "temperature": 0.5,
        "stopSequences": ["END"],
    }
    assert converse["toolConfig"]["toolChoice"] == {"any": {}}
    assert converse["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {
        "json": {"type": "object", "properties": {}}
    }


@pytest.mark.parametrize(
    ("client", "body", "param"),
    [
        (OPENAI, {"seed": 1}, "seed"),
        (OPENAI, {"response_format": {"type": "json_object"}}, "response_format"),
        (ANTHROPIC, {"top_k": 5, "max_tokens": 10}, "top_k"),
    ],
)
def test_what_converse_cannot_express_is_refused_by_name(
    client: WireSchema, body: dict[str, object], param: str
) -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]} | body
    with pytest.raises(BadRequest) as refused:
        translate(client, BEDROCK, request)
    assert refused.value.param == param


def test_an_answer_reaches_an_anthropic_client_with_cached_input_counted() -> None:
    translation, _ = translate(
        ANTHROPIC,
        BEDROCK,
        {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]},
    )
    answer = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "Checking."},
                    {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Oslo"}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": 10,
            "outputTokens": 5,
            "totalTokens": 15,
            "cacheReadInputTokens": 4,
        },
    }

    assert BEDROCK.provider.read_usage(answer) == Usage(14, 5, cached_input_tokens=4)
    message = orjson.loads(translation.answer(answer, Usage(0, 0)))
    assert message["stop_reason"] == "tool_use"
    assert message["content"][1] == {
        "type": "tool_use",
        "id": "t1",
        "name": "weather",
        "input": {"city": "Oslo"},
    }


def test_converse_stream_events_are_read_in_order() -> None:
    decoder = StreamDecoder("anthropic.claude")
    events = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {
            "contentBlockStart": {
                "start": {"toolUse": {"toolUseId": "t1", "name": "weather"}},
                "contentBlockIndex": 1,
            }
        },
        {
            "contentBlockDelta": {
                "delta": {"toolUse": {"input": '{"city":'}},
                "contentBlockIndex": 1,
            }
        },
        {"contentBlockDelta": {"delta": {"toolUse": {"input": '"Oslo"}'}}, "contentBlockIndex": 1}},
        {"messageStop": {"stopReason": "tool_use"}},
        {"metadata": {"usage": {"inputTokens": 3, "outputTokens": 9}, "metrics": {"latencyMs": 5}}},
    ]

    decoded = [event for data in events for event in decoder.decode(data)]

    assert decoded[1:] == [
        TextDelta("Hi"),
        ToolCallStart(0, "t1", "weather"),
        ToolArgumentsDelta(0, '{"city":'),
        ToolArgumentsDelta(0, '"Oslo"}'),
        Finish("tool_calls"),
        UsageReport(Usage(3, 9)),
        StreamEnd(),
    ]


def test_an_exception_event_fails_the_stream_with_its_status() -> None:
    [failed] = StreamDecoder("m").decode({"throttlingException": {"message": "Too many requests"}})
    assert isinstance(failed, StreamFailed)
    assert (failed.error.status, failed.error.message) == (429, "Too many requests")
