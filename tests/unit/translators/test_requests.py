"""Requests translated between schemas: every field the issue lists, both directions, and
the fields that cannot be carried refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.errors import BadRequest
from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.gemini import GEMINI
from extproc.translators.gemini.request import SKIP_THOUGHT_SIGNATURE
from extproc.translators.openai import OPENAI
from extproc.translators.responses import RESPONSES
from extproc.translators.schema import WireSchema
from tests.unit.translators.helpers import DEFAULT_CAP, translate

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
    "AAAABJRU5ErkJggg=="
)
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather now", "parameters": WEATHER},
    }
]
OPENAI_TOOL_TURNS = [
    {"role": "user", "content": "Weather in Paris and London?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"London"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12C"}]},
    {"role": "user", "content": "And tomorrow?"},
]


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "alias", "messages": [{"role": "user", "content": "Hi"}]} | fields


def test_openai_client_to_anthropic_system_turns_images_and_options() -> None:
    body = chat(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bonjour"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            },
        ],
        max_completion_tokens=300,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        user="user-42",
        stream=True,
        stream_options={"include_usage": True},
        metadata={"tag": "no effect on the answer"},
    )

    translation, sent = translate(OPENAI, ANTHROPIC, body)

    assert sent == {
        "model": "upstream-model",
        "max_tokens": 300,
        "system": [
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": "Answer in French."},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Bonjour"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/cat.png"},
                    },
                ],
            },
        ],
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        "stream": True,
    }
    assert translation.translated and translation.stream
    assert not translation.hide_usage, "the translated stream is written anew for the client"


def test_anthropic_requires_max_tokens_so_the_quota_cap_is_sent() -> None:
    _, sent = translate(OPENAI, ANTHROPIC, chat())
    assert sent["max_tokens"] == DEFAULT_CAP
    _, sent = translate(OPENAI, ANTHROPIC, chat(max_tokens=77))
    assert sent["max_tokens"] == 77


def test_openai_tool_calls_and_results_to_anthropic() -> None:
    body = chat(
        messages=OPENAI_TOOL_TURNS,
        tools=OPENAI_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )

    _, sent = translate(OPENAI, ANTHROPIC, body)

    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and London?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "get_weather",
                    "input": {"city": "London"},
                },
            ],
        },
        {
            "role": "user",
            "content": [  # the results of both calls in the next user turn, first
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1",
                    "content": [{"type": "text", "text": "18C"}],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "12C"}],
                },
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    assert sent["tools"] == [
        {"name": "get_weather", "input_schema": WEATHER, "description": "Weather now"}
    ]
    assert sent["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }


def test_openai_tool_calls_and_results_to_gemini() -> None:
    body = chat(messages=OPENAI_TOOL_TURNS, tools=OPENAI_TOOLS, tool_choice="required")

    translation, sent = translate(OPENAI, GEMINI, body, model="gemini-2.5-flash")

    assert "model" not in sent, "Gemini names the model in the path"
    assert sent["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and London?"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {
                        "id": "call_1",
                        "name": "get_weather",
                        "args": {"city": "Paris"},
                    },
                    "thoughtSignature": SKIP_THOUGHT_SIGNATURE,
                },
                {
                    "functionCall": {
                        "id": "call_2",
                        "name": "get_weather",
                        "args": {"city": "London"},
                    }
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "id": "call_1",
                        "name": "get_weather",  # Gemini answers by name: found from the call
                        "response": {"output": "18C"},
                    }
                },
                {
                    "functionResponse": {
                        "id": "call_2",
                        "name": "get_weather",
                        "response": {"output": "12C"},
                    }
                },
                {"text": "And tomorrow?"},
            ],
        },
    ]
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "parametersJsonSchema": WEATHER,
                    "description": "Weather now",
                }
            ]
        }
    ]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert translation.model == "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("choice", "anthropic", "gemini"),
    [
        ("auto", {"type": "auto"}, {"mode": "AUTO"}),
        ("none", {"type": "none"}, {"mode": "NONE"}),
        ("required", {"type": "any"}, {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice_in_each_schema(
    choice: Any, anthropic: dict[str, Any], gemini: dict[str, Any]
) -> None:
    body = chat(tools=OPENAI_TOOLS, tool_choice=choice)
    assert translate(OPENAI, ANTHROPIC, body)[1]["tool_choice"] == anthropic
    assert translate(OPENAI, GEMINI, body)[1]["toolConfig"]["functionCallingConfig"] == gemini


def test_generation_settings_and_structured_output_to_gemini() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    body = chat(
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
        ],
        max_tokens=200,
        temperature=0.3,
        top_p=0.8,
        stop="END",
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    )

    _, sent = translate(OPENAI, GEMINI, body, options={"generationConfig": {"topK": 5}})

    assert sent == {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Describe"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                ],
            }
        ],
        "generationConfig": {
            "maxOutputTokens": 200,
            "temperature": 0.3,
            "topP": 0.8,
            "stopSequences": ["END"],
            "seed": 7,
            "presencePenalty": 0.1,
            "frequencyPenalty": 0.2,
            "responseMimeType": "application/json",
            "responseJsonSchema": schema,
            "topK": 5,  # a forced option merged into the client's settings
        },
    }
    json_mode = translate(OPENAI, GEMINI, chat(response_format={"type": "json_object"}))[1]
    assert json_mode["generationConfig"] == {"responseMimeType": "application/json"}


def test_anthropic_client_to_openai() -> None:
    body = {
        "model": "alias",
        "max_tokens": 200,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "…", "signature": "sig"},
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "text", "text": "And now?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            },
        ],
        "tools": [{"name": "get_weather", "description": "Weather now", "input_schema": WEATHER}],
        "tool_choice": {"type": "any"},
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "metadata": {"user_id": "u-1"},
        "thinking": {"type": "disabled"},
        "stream": True,
    }

    translation, sent = translate(ANTHROPIC, OPENAI, body)

    assert sent == {
        "model": "upstream-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "And now?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
        ],
        "max_completion_tokens": 200,
        "temperature": 0.2,
        "stop": ["END"],
        "user": "u-1",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": WEATHER,
                    "description": "Weather now",
                },
            }
        ],
        "tool_choice": "required",
        "stream": True,
        # The gateway reads the usage of every stream; the client's encoder decides what
        # the client sees.
        "stream_options": {"include_usage": True},
    }
    assert translation.request is not None and translation.request.stream_usage


def test_anthropic_client_to_gemini_errors_and_sampling() -> None:
    body = {
        "model": "alias",
        "max_tokens": 50,
        "top_k": 4,
        "messages": [
            {"role": "user", "content": "Run it"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_9", "name": "run", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_9",
                        "is_error": True,
                        "content": [{"type": "text", "text": "exit 1"}],
                    }
                ],
            },
        ],
        "tools": [{"name": "run", "input_schema": {"type": "object"}}],
    }

    _, sent = translate(ANTHROPIC, GEMINI, body)

    assert sent["generationConfig"] == {"maxOutputTokens": 50, "topK": 4}
    assert sent["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"id": "toolu_9", "name": "run", "response": {"error": "exit 1"}}}
        ],
    }


def test_same_schema_passes_every_field_through() -> None:
    body = chat(logit_bias={"50256": -100}, seed=1, n=2, some_new_field={"x": 1})

    translation, sent = translate(OPENAI, OPENAI, body, options={"temperature": 0})

    assert not translation.translated
    assert sent == body | {"model": "upstream-model", "temperature": 0}


def test_embeddings_to_gemini_batch() -> None:
    body = {
        "model": "alias",
        "input": ["one", "two"],
        "dimensions": 256,
        "encoding_format": "base64",
    }

    translation, sent = translate(OPENAI, GEMINI, body, operation="embeddings", model="embed-1")

    assert sent == {
        "requests": [
            {
                "model": "models/embed-1",
                "content": {"parts": [{"text": "one"}]},
                "outputDimensionality": 256,
            },
            {
                "model": "models/embed-1",
                "content": {"parts": [{"text": "two"}]},
                "outputDimensionality": 256,
            },
        ]
    }
    assert translation.translated


REFUSED: list[tuple[WireSchema, WireSchema, dict[str, Any], str]] = [
    (OPENAI, ANTHROPIC, chat(logit_bias={"1": 2}), "logit_bias"),
    (OPENAI, ANTHROPIC, chat(logprobs=True), "logprobs"),
    (OPENAI, ANTHROPIC, chat(n=2), "n"),
    (OPENAI, ANTHROPIC, chat(seed=1), "seed"),
    (OPENAI, ANTHROPIC, chat(presence_penalty=0.5), "presence_penalty"),
    (OPENAI, ANTHROPIC, chat(frequency_penalty=0.5), "frequency_penalty"),
    (OPENAI, ANTHROPIC, chat(response_format={"type": "json_object"}), "response_format"),
    (OPENAI, ANTHROPIC, chat(store=True), "store"),
    (OPENAI, ANTHROPIC, chat(modalities=["text", "audio"]), "modalities"),
    (OPENAI, ANTHROPIC, chat(web_search_options={}), "web_search_options"),
    (OPENAI, ANTHROPIC, chat(functions=[{"name": "f"}]), "functions"),
    (
        OPENAI,
        ANTHROPIC,
        chat(messages=[{"role": "user", "name": "ann", "content": "Hi"}]),
        "messages.0.name",
    ),
    (
        OPENAI,
        ANTHROPIC,
        chat(messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
        "messages.0.content.0",
    ),
    (OPENAI, GEMINI, chat(parallel_tool_calls=False, tools=OPENAI_TOOLS), "parallel_tool_calls"),
    (
        OPENAI,
        GEMINI,
        chat(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x.io/a.png"}}],
                }
            ]
        ),
        "messages",
    ),
    (ANTHROPIC, OPENAI, {"model": "a", "max_tokens": 5, "messages": [], "top_k": 5}, "top_k"),
    (
        ANTHROPIC,
        GEMINI,
        {
            "model": "a",
            "max_tokens": 5,
            "messages": [],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        },
        "tools.0",
    ),
    (
        ANTHROPIC,
        OPENAI,
        {
            "model": "a",
            "max_tokens": 5,
            "messages": [
                {"role": "user", "content": [{"type": "document", "source": {"type": "text"}}]}
            ],
        },
        "messages.0.content.0",
    ),
    (
        ANTHROPIC,
        OPENAI,
        {"model": "a", "max_tokens": 5, "messages": [], "container": "c"},
        "container",
    ),
    (
        ANTHROPIC,
        OPENAI,
        {"model": "a", "max_tokens": 5, "messages": [], "metadata": {"team": "x"}},
        "metadata.team",
    ),
]


@pytest.mark.parametrize(
    ("client", "provider", "body", "param"),
    REFUSED,
    ids=[f"{c.name}-{p.name}-{param}" for c, p, _, param in REFUSED],
)
def test_fields_without_an_equivalent_are_refused_by_name(
    client: WireSchema, provider: WireSchema, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        translate(client, provider, body)
    assert refused.value.param == param
    assert refused.value.code == "unsupported_parameter"
    assert f"'{param}'" in refused.value.message and provider.name in refused.value.message


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (
            [{"role": "tool", "tool_call_id": "call_404", "content": "x"}],
            "messages.0.tool_call_id",
        ),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}
                    ],
                }
            ],
            "messages.0.tool_calls.0.function.arguments",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}],
            "messages.0.content.0.image_url.url",
        ),
    ],
)
def test_malformed_requests_name_the_field(messages: list[Any], param: str) -> None:
    with pytest.raises(BadRequest) as refused:
        translate(OPENAI, ANTHROPIC, chat(messages=messages))
    assert refused.value.param == param


def test_an_endpoint_the_provider_lacks_is_refused() -> None:
    with pytest.raises(BadRequest) as refused:
        translate(OPENAI, ANTHROPIC, {"model": "a", "input": "x"}, operation="embeddings")
    assert refused.value.code == "unsupported_endpoint"
    with pytest.raises(BadRequest):
        translate(OPENAI, GEMINI, {"model": "a", "input": [[1, 2]]}, operation="embeddings")


@pytest.mark.parametrize("client", [OPENAI, ANTHROPIC], ids=lambda schema: schema.name)
def test_a_forced_output_cap_replaces_the_clients_in_either_spelling(client: WireSchema) -> None:
    """OpenAI refuses a body with both `max_tokens` and `max_completion_tokens`."""
    if client is OPENAI:
        body = chat(max_completion_tokens=300)
    else:
        body = {"model": "a", "max_tokens": 300, "messages": [{"role": "user", "content": "x"}]}

    _, sent = translate(client, OPENAI, body, options={"max_tokens": 64})

    assert sent["max_tokens"] == 64
    assert "max_completion_tokens" not in sent


def test_reasoning_effort_reaches_gemini_as_a_thinking_budget_on_top_of_the_cap() -> None:
    request = chat(reasoning_effort="low", max_completion_tokens=100)
    _, body = translate(OPENAI, GEMINI, request, model="gemini-2.5-flash")
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024}
    assert body["generationConfig"]["maxOutputTokens"] == 1124, "thinking counts as output"


def test_a_responses_reasoning_effort_reaches_chat_completions_and_is_refused_by_anthropic() -> (
    None
):
    request = {"model": "m", "input": "Hi", "reasoning": {"effort": "high", "summary": "auto"}}
    _, body = translate(RESPONSES, OPENAI, request, model="o3")
    assert body["reasoning_effort"] == "high"
    # Anthropic's thinking would have to come back signed with every later turn: an OpenAI
    # client cannot, so thinking is not asked for (or the call refused, if the alias says so).
    _, body = translate(RESPONSES, ANTHROPIC, request, model="claude-sonnet-4-5")
    assert "thinking" not in body
    with pytest.raises(BadRequest) as refused:
        translate(RESPONSES, ANTHROPIC, request, reasoning="refuse")
    assert refused.value.param == "reasoning.effort"
    with pytest.raises(BadRequest) as refused:
        translate(RESPONSES, ANTHROPIC, request, reasoning="always")
    assert refused.value.param == "reasoning.effort"
    with pytest.raises(BadRequest) as invalid:
        translate(RESPONSES, OPENAI, request | {"reasoning": {"effort": "extreme"}})
    assert invalid.value.param == "reasoning.effort"
