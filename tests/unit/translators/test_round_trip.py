"""Properties: a request written in a schema and read back means the same, and a request
translated from one client schema to the other and back means what it meant."""

from __future__ import annotations

import dataclasses
import string
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.gemini import GEMINI
from extproc.translators.ir import (
    ChatRequest,
    Image,
    Message,
    Part,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from extproc.translators.openai import OPENAI
from extproc.translators.schema import WireSchema
from tests.unit.translators.helpers import translate

CLIENT_SCHEMAS = (OPENAI, ANTHROPIC)
TOOL_NAMES = ("get_weather", "lookup", "run_query")

texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
words = st.text(string.ascii_letters, min_size=1, max_size=6)
json_values = st.one_of(
    st.integers(-1000, 1000), st.booleans(), st.none(), words, st.floats(-1e6, 1e6, allow_nan=False)
)
arguments = st.dictionaries(words, json_values, max_size=3)
images = st.one_of(
    st.builds(
        Image,
        media_type=st.just("image/png"),
        data=st.text(string.ascii_letters + "+/", min_size=4, max_size=16),
    ),
    st.builds(Image, url=words.map(lambda name: f"https://example.com/{name}.png")),
)
tools = st.lists(
    st.builds(
        Tool,
        name=st.sampled_from(TOOL_NAMES),
        description=st.none() | texts,
        parameters=st.just({"type": "object", "properties": {"q": {"type": "string"}}}),
    ),
    max_size=3,
    unique_by=lambda tool: tool.name,
)


@st.composite
def conversations(draw: st.DrawFn) -> tuple[Message, ...]:
    """Canonical turns: users and assistants alternate, tool results open the user turn after
    the calls they answer, an assistant's text comes before its calls."""
    messages: list[Message] = []
    pending: list[ToolCall] = []
    for turn in range(draw(st.integers(1, 4))):
        results: list[Part] = [
            ToolResult(call.id, call.name, (Text(draw(texts)),) if draw(st.booleans()) else ())
            for call in pending
        ]
        content = draw(st.lists(texts.map(Text) | images, min_size=0 if results else 1, max_size=3))
        messages.append(Message("user", (*results, *content)))
        calls = [
            ToolCall(f"call_{turn}_{index}", draw(st.sampled_from(TOOL_NAMES)), draw(arguments))
            for index in range(draw(st.integers(0, 2)))
        ]
        text = draw(st.none() | texts)
        if text is None and not calls:
            break  # the conversation ends with the user
        messages.append(Message("assistant", (*([Text(text)] if text else []), *calls)))
        pending = calls
    return tuple(messages)


@st.composite
def requests(draw: st.DrawFn) -> ChatRequest:
    """Requests in what both client schemas can say."""
    declared = draw(tools)
    choice = None
    parallel = None
    if declared:
        choice = draw(
            st.none()
            | st.sampled_from(["auto", "none", "required"]).map(ToolChoice)
            | st.sampled_from([tool.name for tool in declared]).map(lambda n: ToolChoice("tool", n))
        )
        if choice is None or choice.mode != "none":
            parallel = draw(st.none() | st.just(False))
    return ChatRequest(
        messages=draw(conversations()),
        system=tuple(draw(st.lists(texts, max_size=2))),
        max_tokens=draw(st.integers(1, 8192)),
        temperature=draw(st.none() | st.floats(0, 1)),
        top_p=draw(st.none() | st.floats(0, 1)),
        stop=tuple(draw(st.lists(texts, max_size=3))),
        tools=tuple(declared),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        user=draw(st.none() | words),
        stream=draw(st.booleans()),
    )


def written(schema: WireSchema, request: ChatRequest) -> dict[str, Any]:
    """The request as a client of `schema` would send it."""
    return {"model": "alias"} | schema.provider.build_chat(request, 1)


def read(schema: WireSchema, body: dict[str, Any]) -> ChatRequest:
    assert schema.client is not None
    return meaning(schema.client.parse_chat(body, "test"))


def meaning(request: ChatRequest) -> ChatRequest:
    """The request with equivalent spellings made equal: with tools, no tool choice means
    `auto` in every schema; whether a stream reports usage is each schema's own rule."""
    choice = request.tool_choice
    if choice is None and request.tools:
        choice = ToolChoice("auto")
    return dataclasses.replace(request, tool_choice=choice, stream_usage=False)


@settings(max_examples=150, deadline=None)
@given(requests())
def test_each_schema_reads_back_what_it_writes(request: ChatRequest) -> None:
    for schema in CLIENT_SCHEMAS:
        assert read(schema, written(schema, request)) == meaning(request), schema.name


@settings(max_examples=150, deadline=None)
@given(requests())
def test_there_and_back_keeps_the_meaning(request: ChatRequest) -> None:
    for client, provider in ((OPENAI, ANTHROPIC), (ANTHROPIC, OPENAI)):
        _, there = translate(client, provider, written(client, request))
        there.pop("stream_options", None)  # the gateway's own addition, for metering
        _, back = translate(provider, client, there)
        back.pop("stream_options", None)
        assert read(client, back) == meaning(request), f"{client.name} → {provider.name} → back"


@settings(max_examples=100, deadline=None)
@given(requests())
def test_gemini_gets_every_turn_and_every_text(request: ChatRequest) -> None:
    request = dataclasses.replace(
        request,
        parallel_tool_calls=None,  # Gemini has no way to forbid parallel calls
        messages=tuple(
            Message(m.role, tuple(p for p in m.parts if not (isinstance(p, Image) and p.url)))
            for m in request.messages
        ),
    )
    sent = orjson.dumps(GEMINI.provider.build_chat(request, 1)).decode()
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, Text):
                assert orjson.dumps(part.text).decode() in sent
            elif isinstance(part, ToolCall):
                assert orjson.dumps(part.id).decode() in sent
    body = GEMINI.provider.build_chat(request, 1)
    assert [content["role"] for content in body["contents"]] == [
        "model" if message.role == "assistant" else "user" for message in request.messages
    ]
