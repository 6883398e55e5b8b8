"""Any client schema to any provider kind, through the real Envoy and processor: the official
`openai` and `anthropic` SDKs against aliases on OpenAI, Azure OpenAI, Anthropic and Gemini,
with what each provider received checked in its own format, and the usage the gateway logged
and charged equal to the provider's."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from mockprovider.script import REPLY, estimate_tokens

from tests.conftest import provider_document, write_provider_keys
from tests.harness import (
    HTTP,
    MockProvider,
    RunningGateway,
    access_log_lines,
    logged_since,
    mock_provider,
    quota_usage,
    running_gateway,
    settles_to,
    sha256,
    write_config,
)

pytestmark = pytest.mark.envoy

KEY = "sk-gw-translate-0123456789"
BUDGET_KEY = "sk-gw-translate-budget-0123456789"
BUDGET = 40
ALIASES = {"openai": "oa", "azure": "az", "anthropic": "an", "gemini": "ge"}
PRICE = {
    "input_per_million": 3.0,
    "output_per_million": 15.0,
    "cached_input_per_million": 0.3,
    "cache_write_per_million": 3.75,
}
REPLY_WORDS = len(REPLY.split())
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "The weather now",
    "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
}
TWO_CALLS = json.dumps(
    [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "London"}},
    ]
)


@pytest.fixture(scope="module")
def config(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("translation")
    write_provider_keys(directory)
    models = {
        "oa": {"provider": "openai", "model": "gpt-4o-2024-08-06"},
        "oa-capped": {
            "provider": "openai",
            "model": "gpt-4o-2024-08-06",
            "options": {"max_tokens": 5},
        },
        "az": {"provider": "azure", "model": "gpt4o-deployment"},
        "an": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
        "ge": {"provider": "gemini", "model": "gemini-2.5-flash"},
        "ge-embed": {"provider": "gemini", "model": "gemini-embedding-001"},
        "ge-short": {"provider": "gemini", "model": "gemini-2.5-flash", "max_output_tokens": 5},
    }
    document = {
        "processor": {"message_timeout": "10s"},
        "providers": provider_document(mock.url, directory),
        "models": models,
        "prices": dict.fromkeys(models, PRICE),
        "keys": [
            {
                "id": "app",
                "sha256": sha256(KEY),
                "models": ["*"],
                "limits": [{"tokens": 10**9, "per": "1d"}, {"usd": 1000, "per": "1d"}],
            },
            {
                "id": "budget",
                "sha256": sha256(BUDGET_KEY),
                "models": ["*"],
                "limits": [{"tokens": BUDGET, "per": "1d"}],
            },
        ],
        "telemetry": {"access_log": str(directory / "access.log")},
    }
    return write_config(directory, document)


@pytest.fixture(scope="module")
def gateway(config: Path) -> Iterator[RunningGateway]:
    with running_gateway(config, config.parent / "gateway.log") as running:
        yield running


@pytest.fixture
def oai(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def ant(gateway: RunningGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0) as sdk:
        yield sdk


def provider_input_tokens(request: dict[str, Any]) -> int:
    """The input the mock reports for a request it received (its own count)."""
    body = request["body"]
    if request["path"].endswith("/v1/messages"):
        system = body.get("system")
        return estimate_tokens(body["messages"]) + (estimate_tokens(system) if system else 0)
    if ":generateContent" in request["path"] or ":streamGenerateContent" in request["path"]:
        system = body.get("systemInstruction")
        return estimate_tokens(body["contents"]) + (estimate_tokens(system) if system else 0)
    return estimate_tokens(body["messages"])


def assert_native(kind: str, request: dict[str, Any], *, stream: bool = False) -> None:
    """The provider got the request in its own schema, with its own credential."""
    path, headers, body = request["path"], request["headers"], request["body"]
    assert headers["accept-encoding"] == "identity", "answers the gateway reads come plain"
    if kind == "anthropic":
        assert path == "/v1/messages" and "x-api-key" in headers
        assert body["model"] == "claude-sonnet-4-5" and isinstance(body["max_tokens"], int)
        assert all(message["role"] in ("user", "assistant") for message in body["messages"])
    elif kind == "gemini":
        method = "streamGenerateContent" if stream else "generateContent"
        assert path == f"/v1beta/models/gemini-2.5-flash:{method}"
        assert request["query"] == ("alt=sse" if stream else "")
        assert "x-goog-api-key" in headers and "model" not in body
        assert body["contents"][0]["role"] == "user"
    elif kind == "azure":
        assert path == "/azure/openai/deployments/gpt4o-deployment/chat/completions"
        assert "api-key" in headers
    else:
        assert path == "/v1/chat/completions" and "authorization" in headers


# OpenAI clients, every provider kind.


@pytest.mark.parametrize("kind", ALIASES)
def test_openai_sdk_chat_on_every_provider_kind(
    kind: str, oai: openai.OpenAI, mock: MockProvider, config: Path
) -> None:
    before = len(access_log_lines(config))
    answer = oai.chat.completions.create(
        model=ALIASES[kind],
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! What do you need?"},
            {"role": "user", "content": "A greeting."},
        ],
        max_tokens=100,
        temperature=0.5,
    )

    upstream = mock.last_request()
    assert_native(kind, upstream)
    assert answer.choices[0].message.content == REPLY
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == provider_input_tokens(upstream)
    assert answer.usage.completion_tokens == REPLY_WORDS
    line = logged_since(config, before, ALIASES[kind])
    assert (line["input_tokens"], line["output_tokens"]) == (
        answer.usage.prompt_tokens,
        REPLY_WORDS,
    )
    assert line["provider"] == kind and line["status"] == 200


@pytest.mark.parametrize("kind", ALIASES)
def test_openai_sdk_stream_on_every_provider_kind(
    kind: str, oai: openai.OpenAI, mock: MockProvider
) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=ALIASES[kind],
            messages=[{"role": "user", "content": "Hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    upstream = mock.last_request()
    assert_native(kind, upstream, stream=True)
    assert upstream["stream"]["completed"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert len(chunks) > REPLY_WORDS, "a chunk per word the provider streamed"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        provider_input_tokens(upstream),
        REPLY_WORDS,
    )


@pytest.mark.parametrize("kind", ALIASES)
def test_openai_sdk_tools_round_trip_on_every_provider_kind(
    kind: str, oai: openai.OpenAI, mock: MockProvider
) -> None:
    question: list[Any] = [{"role": "user", "content": "Weather in Paris and London?"}]
    first = oai.chat.completions.create(
        model=ALIASES[kind],
        messages=question,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        extra_headers={"x-mock-tool-calls": TWO_CALLS},
    )
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]  # type: ignore[union-attr]
    assert calls == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "London"})]

    results = [
        {"role": "tool", "tool_call_id": call.id, "content": temperature}
        for call, temperature in zip(message.tool_calls, ("18C", "12C"), strict=True)
    ]
    second = oai.chat.completions.create(
        model=ALIASES[kind],
        messages=[*question, message.model_dump(exclude_none=True), *results],  # type: ignore[list-item]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )

    # The provider got both results in its own shape (the mock quotes them back).
    assert second.choices[0].message.content == "Tool results: 18C | 12C."
    assert_native(kind, mock.last_request())


@pytest.mark.parametrize("kind", ALIASES)
def test_openai_sdk_streams_tool_call_arguments(kind: str, oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model=ALIASES[kind],
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
        extra_headers={"x-mock-tool-calls": TWO_CALLS},
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] = delta.id or entry["id"]
            if delta.function is not None:
                entry["name"] = delta.function.name or entry["name"]
                entry["arguments"] += delta.function.arguments or ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason

    assert finish == "tool_calls"
    assert [json.loads(call["arguments"]) for call in calls.values()] == [
        {"city": "Paris"},
        {"city": "London"},
    ]
    assert all(call["id"] and call["name"] == "get_weather" for call in calls.values())


def test_openai_sdk_image_reaches_gemini_and_anthropic_by_value(
    oai: openai.OpenAI, mock: MockProvider
) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n a one-pixel image").decode()
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    oai.chat.completions.create(model="ge", messages=[{"role": "user", "content": content}])
    parts = mock.last_request()["body"]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": png}}

    oai.chat.completions.create(model="an", messages=[{"role": "user", "content": content}])
    block = mock.last_request()["body"]["messages"][0]["content"][1]
    assert block["source"] == {"type": "base64", "media_type": "image/png", "data": png}


# Anthropic clients, every provider kind.


@pytest.mark.parametrize("kind", ALIASES)
def test_anthropic_sdk_messages_on_every_provider_kind(
    kind: str, ant: anthropic.Anthropic, mock: MockProvider, config: Path
) -> None:
    before = len(access_log_lines(config))
    message = ant.messages.create(
        model=ALIASES[kind],
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello"}],
        stop_sequences=["never-said"],
    )

    upstream = mock.last_request()
    assert_native(kind, upstream)
    assert message.content[0].type == "text" and message.content[0].text == REPLY
    assert message.stop_reason == "end_turn"
    usage = message.usage
    total_input = usage.input_tokens + (usage.cache_read_input_tokens or 0)
    assert total_input == provider_input_tokens(upstream)
    assert usage.output_tokens == REPLY_WORDS
    line = logged_since(config, before, ALIASES[kind])
    assert (line["input_tokens"], line["output_tokens"]) == (total_input, REPLY_WORDS)


@pytest.mark.parametrize("kind", ALIASES)
def test_anthropic_sdk_stream_on_every_provider_kind(
    kind: str, ant: anthropic.Anthropic, mock: MockProvider
) -> None:
    with ant.messages.stream(
        model=ALIASES[kind], max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()

    upstream = mock.last_request()
    assert_native(kind, upstream, stream=True)
    assert "".join(pieces) == REPLY and len(pieces) == REPLY_WORDS
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == REPLY_WORDS
    assert final.usage.input_tokens == provider_input_tokens(upstream)


@pytest.mark.parametrize("kind", ALIASES)
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_anthropic_sdk_tools_round_trip_on_every_provider_kind(
    kind: str, streamed: bool, ant: anthropic.Anthropic
) -> None:
    question: list[Any] = [{"role": "user", "content": "Weather in Paris and London?"}]
    request: dict[str, Any] = {
        "model": ALIASES[kind],
        "max_tokens": 200,
        "tools": [ANTHROPIC_TOOL],
        "extra_headers": {"x-mock-tool-calls": TWO_CALLS},
    }
    if streamed:
        with ant.messages.stream(messages=question, **request) as stream:
            first = stream.get_final_message()
    else:
        first = ant.messages.create(messages=question, **request)
    uses = [block for block in first.content if block.type == "tool_use"]
    assert first.stop_reason == "tool_use"
    assert [(use.name, use.input) for use in uses] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "London"}),
    ]

    results = [
        {"type": "tool_result", "tool_use_id": use.id, "content": temperature}
        for use, temperature in zip(uses, ("18C", "12C"), strict=True)
    ]
    second = ant.messages.create(
        model=ALIASES[kind],
        max_tokens=200,
        tools=[ANTHROPIC_TOOL],  # type: ignore[list-item]
        messages=[
            *question,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": results},  # type: ignore[typeddict-item]
        ],
    )
    assert second.content[0].type == "text"
    assert second.content[0].text == "Tool results: 18C | 12C."


def test_an_alias_forcing_max_tokens_still_answers_anthropic_clients(
    ant: anthropic.Anthropic, mock: MockProvider
) -> None:
    message = ant.messages.create(
        model="oa-capped", max_tokens=300, messages=[{"role": "user", "content": "Hello"}]
    )

    body = mock.last_request()["body"]
    assert body["max_tokens"] == 5 and "max_completion_tokens" not in body
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5


def test_anthropic_sdk_lists_the_models(ant: anthropic.Anthropic, oai: openai.OpenAI) -> None:
    assert {model.id for model in ant.models.list()} >= set(ALIASES.values())
    listed = {model.id: model.model_dump() for model in oai.models.list()}
    assert listed["an"]["schemas"] == ["anthropic", "openai", "responses"]
    assert "/v1/responses" in listed["an"]["endpoints"]
    assert "/v1/messages" in listed["ge"]["endpoints"]
    assert "/v1/embeddings" in listed["ge-embed"]["endpoints"]
    assert "/v1/embeddings" not in listed["an"]["endpoints"]


# Compression, usage and money.


@pytest.mark.parametrize("kind", ALIASES)
@pytest.mark.parametrize(
    "force", [False, True], ids=["provider-asked-identity", "provider-gzips-anyway"]
)
def test_usage_is_exact_with_gzip_on_both_legs(
    kind: str, force: bool, gateway: RunningGateway, mock: MockProvider, config: Path
) -> None:
    headers = {"authorization": f"Bearer {KEY}", "accept-encoding": "gzip"}
    if force:
        headers["x-mock-force-gzip"] = "1"
    body = {"model": ALIASES[kind], "messages": [{"role": "user", "content": "Hello there"}]}
    before = len(access_log_lines(config))

    response = HTTP.post(gateway.url + "/v1/chat/completions", json=body, headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-encoding"] == "gzip", "Envoy compresses toward the client"
    usage = response.json()["usage"]  # httpx inflates it
    line = logged_since(config, before, ALIASES[kind])
    assert (line["input_tokens"], line["output_tokens"]) == (
        provider_input_tokens(mock.last_request()),
        REPLY_WORDS,
    )
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
        line["input_tokens"],
        line["output_tokens"],
    )


@pytest.mark.parametrize("kind", ALIASES)
def test_a_gzipped_provider_stream_is_read_and_relayed(
    kind: str, gateway: RunningGateway, mock: MockProvider, config: Path
) -> None:
    headers = {"authorization": f"Bearer {KEY}", "x-mock-force-gzip": "1"}
    body = {"model": ALIASES[kind], "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    before = len(access_log_lines(config))

    with HTTP.stream("POST", gateway.url + "/v1/chat/completions", json=body, headers=headers) as r:
        raw = b"".join(r.iter_raw())

    assert r.headers.get("content-encoding") is None, "events reach the client uncompressed"
    text = "".join(
        chunk["choices"][0]["delta"].get("content") or ""
        for chunk in (
            orjson.loads(line[6:]) for line in raw.split(b"\n\n") if line.startswith(b"data: {")
        )
        if chunk["choices"]
    )
    assert text == REPLY
    line = logged_since(config, before, ALIASES[kind])
    assert line["output_tokens"] == REPLY_WORDS
    assert line["input_tokens"] == provider_input_tokens(mock.last_request())


@pytest.mark.parametrize(
    ("kind", "headers"),
    [
        ("anthropic", {"x-mock-cached-tokens": "6", "x-mock-cache-write-tokens": "3"}),
        ("gemini", {"x-mock-cached-tokens": "6", "x-mock-reasoning-tokens": "20"}),
        ("openai", {"x-mock-cached-tokens": "6", "x-mock-reasoning-tokens": "20"}),
    ],
)
def test_quotas_charge_the_translated_usage_with_cache_prices(
    kind: str, headers: dict[str, str], oai: openai.OpenAI, gateway: RunningGateway, config: Path
) -> None:
    usage_before = quota_usage(config, gateway.processor)
    usd_before = float(usage_before["key:app usd 1d *"]["used"])
    tokens_before = float(usage_before["key:app tokens 1d *"]["used"])
    prompt = "Please tell me something about caching prompts. " * 4

    answer = oai.chat.completions.create(
        model=ALIASES[kind], messages=[{"role": "user", "content": prompt}], extra_headers=headers
    )

    usage = answer.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    cached = usage.prompt_tokens_details.cached_tokens or 0
    assert cached == 6
    written = int(headers.get("x-mock-cache-write-tokens", "0"))
    reasoning = int(headers.get("x-mock-reasoning-tokens", "0"))
    assert usage.completion_tokens == REPLY_WORDS + reasoning, "thinking is output"
    uncached = usage.prompt_tokens - cached - written
    micro_usd = (
        uncached * PRICE["input_per_million"]
        + cached * PRICE["cached_input_per_million"]
        + written * PRICE["cache_write_per_million"]
        + usage.completion_tokens * PRICE["output_per_million"]
    )
    settles_to(
        config, "app", "tokens", tokens_before + usage.total_tokens, processor=gateway.processor
    )
    used = float(quota_usage(config, gateway.processor)["key:app usd 1d *"]["used"])
    assert used == pytest.approx(usd_before + round(micro_usd) / 1e6, abs=1e-9)


def test_gemini_embeddings_for_an_openai_client(oai: openai.OpenAI, mock: MockProvider) -> None:
    direct = oai.embeddings.create(model="ge-embed", input=["one", "two"], dimensions=8)

    upstream = mock.last_request()
    assert upstream["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert len(direct.data) == 2 and len(direct.data[0].embedding) == 8
    assert direct.usage.prompt_tokens > 0, "the gateway's estimate: Gemini reports none"
    floats = oai.embeddings.create(
        model="ge-embed", input=["one", "two"], dimensions=8, encoding_format="float"
    )
    # The SDK asks for base64 (float32) by default; the same vectors either way.
    for as_float, as_base64 in zip(floats.data, direct.data, strict=True):
        assert as_float.embedding == pytest.approx(as_base64.embedding, rel=1e-6)


# Errors and refusals.


@pytest.mark.parametrize("kind", ["anthropic", "gemini", "azure"])
def test_provider_errors_reach_openai_clients_as_openai_errors(
    kind: str, oai: openai.OpenAI, gateway: RunningGateway, config: Path
) -> None:
    before = quota_usage(config, gateway.processor)["key:app tokens 1d *"]["used"]
    with pytest.raises(openai.RateLimitError) as raised:
        oai.chat.completions.create(
            model=ALIASES[kind],
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"x-mock-status": "429"},
        )
    assert raised.value.status_code == 429
    assert raised.value.type == "rate_limit_exceeded"
    assert "Mock provider answered 429" in raised.value.message
    settles_to(config, "app", "tokens", float(before), processor=gateway.processor)


@pytest.mark.parametrize("kind", ["openai", "gemini"])
def test_provider_errors_reach_anthropic_clients_in_their_shape(
    kind: str, ant: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.APIStatusError) as raised:
        ant.messages.create(
            model=ALIASES[kind],
            max_tokens=10,
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"x-mock-status": "503"},
        )
    assert raised.value.status_code == 503
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "Mock provider answered 503."},
    }


def test_an_answer_that_cannot_be_translated_is_a_clear_502(
    oai: openai.OpenAI, gateway: RunningGateway, config: Path
) -> None:
    before = quota_usage(config, gateway.processor)["key:app tokens 1d *"]["used"]
    with pytest.raises(openai.InternalServerError) as raised:
        oai.chat.completions.create(
            model="an",
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"x-mock-status": "200", "x-mock-body": "<html>maintenance</html>"},
        )
    assert raised.value.status_code == 502
    assert raised.value.code == "bad_answer"
    settles_to(config, "app", "tokens", float(before), processor=gateway.processor)


def test_the_gateways_own_errors_speak_anthropic_on_messages(gateway: RunningGateway) -> None:
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key="sk-unknown", max_retries=0)
    with sdk, pytest.raises(anthropic.AuthenticationError) as raised:
        sdk.messages.create(model="an", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Invalid API key."},
    }


def test_a_field_without_an_equivalent_is_refused_and_nothing_is_charged(
    oai: openai.OpenAI, mock: MockProvider, gateway: RunningGateway, config: Path
) -> None:
    mock.clear()
    before = quota_usage(config, gateway.processor)["key:app tokens 1d *"]["used"]
    with pytest.raises(openai.BadRequestError) as raised:
        oai.chat.completions.create(
            model="an", messages=[{"role": "user", "content": "Hi"}], logit_bias={"1": 5}
        )
    assert raised.value.param == "logit_bias"
    assert raised.value.code == "unsupported_parameter"
    assert mock.requests() == []
    assert quota_usage(config, gateway.processor)["key:app tokens 1d *"]["used"] == before


def test_a_budget_ends_a_translated_stream_with_an_error_event(
    gateway: RunningGateway, mock: MockProvider, config: Path
) -> None:
    """A stream that outgrows its reservation (no cap asked; the alias reserves 5 output
    tokens) is ended by the budget in the client's schema, and the provider is stopped."""
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=BUDGET_KEY, max_retries=0) as sdk:
        stream = sdk.chat.completions.create(
            model="ge-short",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            extra_headers={"x-mock-words": "300", "x-mock-chunk-delay-ms": "5"},
        )
        text = ""
        with pytest.raises(openai.APIError) as raised:
            for chunk in stream:
                text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert "Limit reached during the stream" in raised.value.message
    assert text.startswith("Hello from the mock")
    assert not mock.last_request()["stream"]["completed"], "the provider was stopped"
    settles_to(config, "budget", "tokens", BUDGET, processor=gateway.processor)


def test_gzip_request_bodies_are_accepted_and_others_get_415(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    body = orjson.dumps({"model": "ge", "messages": [{"role": "user", "content": "zipped"}]})
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    zipped = HTTP.post(
        gateway.url + "/v1/chat/completions",
        content=gzip.compress(body),
        headers=headers | {"content-encoding": "gzip"},
    )
    assert zipped.status_code == 200, zipped.text
    assert mock.last_request()["body"]["contents"][0]["parts"] == [{"text": "zipped"}]

    mock.clear()
    brotli = HTTP.post(
        gateway.url + "/v1/chat/completions",
        content=body,
        headers=headers | {"content-encoding": "br"},
    )
    assert brotli.status_code == 415
    assert brotli.json()["error"]["code"] == "unsupported_content_encoding"
    assert mock.requests() == []


def test_gzip_bodies_are_inflated_whole_and_bombs_get_413(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    """A repetitive prompt inflates ~1000:1 (past Envoy's default ratio guard, which would cut
    it short); the body limit alone stops a bomb."""
    headers = {
        "authorization": f"Bearer {KEY}",
        "content-type": "application/json",
        "content-encoding": "gzip",
    }
    prompt = "x" * (1024 * 1024)
    body = {"model": "oa", "messages": [{"role": "user", "content": prompt}]}
    whole = HTTP.post(
        gateway.url + "/v1/chat/completions",
        content=gzip.compress(orjson.dumps(body)),
        headers=headers,
    )
    assert whole.status_code == 200, whole.text
    assert mock.last_request()["body"]["messages"][0]["content"] == prompt

    mock.clear()
    bomb = {"model": "oa", "messages": [{"role": "user", "content": "x" * (20 * 1024 * 1024)}]}
    refused = HTTP.post(
        gateway.url + "/v1/chat/completions",
        content=gzip.compress(orjson.dumps(bomb)),
        headers=headers,
    )
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "request_too_large"
    assert mock.requests() == []


def test_a_key_the_provider_refuses_is_a_502_for_the_client(tmp_path: Path) -> None:
    """Gemini refuses a wrong key with a 400 whose details say API_KEY_INVALID: the client
    learns that the gateway's credentials failed, not that its request was bad."""
    real, wrong = tmp_path / "real", tmp_path / "wrong"
    real.mkdir()
    wrong.mkdir()
    keys = write_provider_keys(real)
    for name in ("openai", "azure", "anthropic", "gemini"):
        (wrong / name).write_text(f"not-the-{name}-key")
    with mock_provider(keys) as strict:
        document = {
            "providers": provider_document(strict.url, wrong),
            "models": {
                "ge": {"provider": "gemini", "model": "gemini-2.5-flash"},
                "an": {"provider": "anthropic", "model": "claude"},
            },
            "keys": [{"id": "app", "sha256": sha256(KEY), "models": ["*"]}],
        }
        config = write_config(tmp_path, document)
        with running_gateway(config, tmp_path / "gateway.log") as running:
            for model in ("ge", "an"):
                response = HTTP.post(
                    running.url + "/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": "x"}]},
                    headers={"authorization": f"Bearer {KEY}"},
                )
                assert response.status_code == 502, response.text
                assert response.json()["error"]["code"] == "provider_auth_failed"
                assert "not-the" not in response.text
            log = (tmp_path / "gateway.log").read_text()
            assert "refused the gateway's credentials" in log
            assert "not-the-gemini-key" not in log


def test_provider_answers_are_checked_like_the_real_apis(mock: MockProvider) -> None:
    """The mock refuses what the real APIs refuse, so a translation that passes here
    produced a request those APIs accept."""
    url, key = (
        mock.url,
        {"x-api-key": "sk-ant-provider-secret-value", "anthropic-version": "2023-06-01"},
    )
    system_role = HTTP.post(
        url + "/v1/messages",
        json={"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
        headers=key,
    )
    assert system_role.status_code == 400
    assert system_role.json()["error"]["type"] == "invalid_request_error"
    no_version = HTTP.post(
        url + "/v1/messages",
        json={"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": key["x-api-key"]},
    )
    assert no_version.status_code == 400
    unsigned = HTTP.post(
        url + "/v1beta/models/g:generateContent",
        json={
            "contents": [
                {"role": "user", "parts": [{"text": "x"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            ]
        },
        headers={"x-goog-api-key": "AIza-provider-gemini-secret-value"},
    )
    assert unsigned.status_code == 400
    assert "thought_signature" in unsigned.json()["error"]["message"]
    wrong_key = HTTP.post(
        url + "/v1beta/models/g:generateContent",
        json={"contents": []},
        headers={"x-goog-api-key": "nope"},
    )
    assert wrong_key.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    unknown = HTTP.post(
        url + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}], "bogus": 1},
        headers={"authorization": "Bearer sk-provider-openai-secret-value"},
    )
    assert unknown.status_code == 400
    compressed = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        headers={
            "authorization": "Bearer sk-provider-openai-secret-value",
            "accept-encoding": "gzip",
        },
    )
    assert compressed.headers["content-encoding"] == "gzip", "hosted APIs compress when allowed"
