"""What coding agents speak, through the real Envoy and processor: OpenAI's Responses API
(Codex CLI, the Agents SDK) with the official `openai` SDK against aliases on every provider
kind — passed through where the provider serves it, translated elsewhere — and token counts
(Anthropic's `count_tokens`, which Claude Code calls every turn, and OpenAI's
`input_tokens`), counted by the provider where it counts natively, estimated by the gateway
elsewhere, never charged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from mockprovider.script import REPLY
from mockprovider.script import estimate_tokens as provider_estimate
from openai.types.responses import ResponseUsage

from extproc.usage import estimate_tokens
from tests.conftest import PROVIDER_KEYS, provider_document, write_provider_keys
from tests.harness import (
    HTTP,
    MockProvider,
    RunningGateway,
    access_log_lines,
    counter_used,
    logged_since,
    running_gateway,
    settles_to,
    sha256,
    write_config,
)

pytestmark = pytest.mark.envoy

KEY = "sk-gw-agents-0123456789"
BUDGET_KEY = "sk-gw-agents-budget-0123456789"
BUDGET = 60
ONE_REQUEST_KEY = "sk-gw-agents-one-request-0123456789"
NARROW_KEY = "sk-gw-agents-narrow-0123456789"
PRICE = {"input_per_million": 3.0, "output_per_million": 15.0}
MESSAGES = [{"role": "user", "content": "How many tokens is this question?"}]
SYSTEM = "You are a coding agent."
KINDS = {
    "openai": ("oa", "gpt-4o-2024-08-06"),
    "azure": ("az", "gpt4o-deployment"),
    "anthropic": ("an", "claude-sonnet-4-5"),
    "gemini": ("ge", "gemini-2.5-flash"),
    "compat": ("co", "llama-3.3-70b"),
}
"""Provider → (alias, upstream model); `compat` is OpenAI-compatible without a Responses API."""
ALIASES = {kind: alias for kind, (alias, _) in KINDS.items()}
UPSTREAM_PATHS = {
    "openai": "/v1/responses",
    "azure": "/azure/openai/v1/responses",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.5-flash:generateContent",
    "compat": "/v1/chat/completions",
}
PASSED_THROUGH = ("openai", "azure")
REPLY_WORDS = len(REPLY.split())
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CALL_PARIS = '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'


@pytest.fixture(scope="module")
def config(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("agents")
    write_provider_keys(directory)
    providers = provider_document(mock.url, directory)
    providers["compat"] = providers["openai"] | {"responses_api": False}
    models = {alias: {"provider": kind, "model": model} for kind, (alias, model) in KINDS.items()}
    # Aliases that reserve 5 output tokens when the client asks for no cap (and OpenAI and
    # Gemini get none): their streams outgrow the reservation.
    models["oa-short"] = models["oa"] | {"max_output_tokens": 5}
    models["oa-team"] = models["oa"]
    models["ge-short"] = models["ge"] | {"max_output_tokens": 5}
    document = {
        "providers": providers,
        "models": models,
        "prices": dict.fromkeys(models, PRICE),
        "keys": [
            {
                "id": "app",
                "sha256": sha256(KEY),
                "models": ["*"],
                "limits": [{"tokens": 10**9, "per": "1d"}, {"requests": 10**6, "per": "1d"}],
            },
            *(
                {
                    "id": f"budget-{alias}",
                    "sha256": sha256(f"{BUDGET_KEY}-{alias}"),
                    "models": ["*"],
                    "limits": [{"tokens": BUDGET, "per": "1d"}],
                }
                for alias in ("oa-short", "ge-short")
            ),
            {
                "id": "one-request",
                "sha256": sha256(ONE_REQUEST_KEY),
                "models": ["*"],
                "limits": [{"requests": 1, "per": "1d"}, {"tokens": 100, "per": "1d"}],
            },
            {"id": "narrow", "sha256": sha256(NARROW_KEY), "models": ["oa"]},
        ],
        "telemetry": {"access_log": str(directory / "access.log")},
    }
    return write_config(directory, document)


@pytest.fixture(scope="module")
def gateway(config: Path) -> Iterator[RunningGateway]:
    with running_gateway(config, config.parent / "gateway.log") as running:
        yield running


def anthropic_sdk(gateway: RunningGateway, key: str = KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


def test_anthropic_counts_tokens_itself_and_its_count_matches_the_call(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    with anthropic_sdk(gateway) as sdk:
        mock.clear()
        counted = sdk.messages.with_raw_response.count_tokens(
            model="an", system=SYSTEM, messages=MESSAGES
        )
        upstream = mock.last_request()
        message = sdk.messages.create(model="an", max_tokens=50, system=SYSTEM, messages=MESSAGES)

    assert counted.headers["x-extproc-token-count"] == "provider"
    assert upstream["path"] == "/v1/messages/count_tokens"
    assert "x-api-key" in upstream["headers"] and "anthropic-version" in upstream["headers"]
    assert upstream["body"]["model"] == "claude-sonnet-4-5"
    assert KEY not in str(upstream["headers"])
    assert counted.parse().input_tokens == message.usage.input_tokens


@pytest.mark.parametrize("alias", ["oa", "ge"])
def test_other_providers_get_the_gateways_estimate_and_nothing_goes_upstream(
    alias: str, gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    with anthropic_sdk(gateway) as sdk:
        counted = sdk.messages.with_raw_response.count_tokens(
            model=alias, system=SYSTEM, messages=MESSAGES
        )

    assert counted.headers["x-extproc-token-count"] == "estimate"
    tokens = counted.parse().input_tokens
    assert tokens == estimate_tokens([SYSTEM, MESSAGES]), "the estimate quotas reserve"
    assert mock.requests() == []


def test_counting_is_free_even_with_the_quota_spent(gateway: RunningGateway, config: Path) -> None:
    with anthropic_sdk(gateway, ONE_REQUEST_KEY) as sdk:
        for alias in ("an", "oa", "an"):
            sdk.messages.count_tokens(model=alias, messages=MESSAGES)
        assert counter_used(config, "one-request", "requests", processor=gateway.processor) == 0
        sdk.messages.create(model="an", max_tokens=5, messages=MESSAGES)
        with pytest.raises(anthropic.RateLimitError):
            sdk.messages.create(model="an", max_tokens=5, messages=MESSAGES)
        assert sdk.messages.count_tokens(model="an", messages=MESSAGES).input_tokens > 0


def test_a_count_needs_a_key_that_may_use_the_alias_and_a_valid_body(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    with anthropic_sdk(gateway, NARROW_KEY) as sdk, pytest.raises(anthropic.PermissionDeniedError):
        sdk.messages.count_tokens(model="an", messages=MESSAGES)
    unknown = anthropic_sdk(gateway, "sk-gw-unknown")
    with unknown, pytest.raises(anthropic.AuthenticationError):
        unknown.messages.count_tokens(model="an", messages=MESSAGES)
    with anthropic_sdk(gateway) as sdk:
        with pytest.raises(anthropic.BadRequestError) as raised:
            sdk.messages.count_tokens(model="an", messages=MESSAGES, extra_body={"max_tokens": 10})
        assert raised.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        with pytest.raises(anthropic.BadRequestError):
            sdk.messages.count_tokens(model="an", messages=[])
    assert mock.requests() == []


@pytest.fixture
def oai(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        yield sdk


def provider_input(request: dict[str, Any]) -> int:
    """The input the mock reports for a request it received, whatever schema it spoke."""
    body, path = request["body"], request["path"]
    if path.endswith(("/responses", "/input_tokens")):
        return provider_estimate(body["input"]) + provider_estimate(body["instructions"])
    if path.endswith("/v1/messages"):
        return provider_estimate(body["messages"]) + provider_estimate(body["system"])
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return provider_estimate(body["contents"]) + provider_estimate(body["systemInstruction"])
    return provider_estimate(body["messages"])


# The Responses API.


@pytest.mark.parametrize("kind", KINDS)
def test_responses_on_every_provider_kind_with_exact_usage_and_cost(
    kind: str, oai: openai.OpenAI, mock: MockProvider, config: Path
) -> None:
    before = len(access_log_lines(config))
    mock.clear()
    response = oai.responses.create(
        model=ALIASES[kind], instructions=SYSTEM, input="Hello", max_output_tokens=100
    )

    upstream = mock.last_request()
    assert upstream["path"] == UPSTREAM_PATHS[kind]
    if kind in PASSED_THROUGH:
        assert upstream["body"]["input"] == "Hello", "the client's body, as it was sent"
    assert response.output_text == REPLY
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.input_tokens == provider_input(upstream)
    assert response.usage.output_tokens == REPLY_WORDS
    line = logged_since(config, before, ALIASES[kind])
    assert (line["input_tokens"], line["output_tokens"]) == (
        response.usage.input_tokens,
        REPLY_WORDS,
    )
    expected_cost = (response.usage.input_tokens * 3.0 + REPLY_WORDS * 15.0) / 1e6
    assert line["cost_usd"] == pytest.approx(expected_cost)


CACHE_WRITES = ("openai", "azure", "anthropic")
"""Providers (of these tests) that report what a request wrote to the prompt cache."""


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_responses_usage_has_every_field_the_sdk_requires(
    kind: str, streamed: bool, oai: openai.OpenAI
) -> None:
    cache = {"x-mock-cached-tokens": "3", "x-mock-cache-write-tokens": "2"}
    if streamed:
        with oai.responses.stream(model=ALIASES[kind], input=SYSTEM, extra_headers=cache) as events:
            completed = [event for event in events if event.type == "response.completed"]
        usage = completed[0].response.model_dump()["usage"]
    else:
        raw = oai.responses.with_raw_response.create(
            model=ALIASES[kind], input=SYSTEM, extra_headers=cache
        )
        usage = raw.http_response.json()["usage"]

    checked = ResponseUsage.model_validate(usage, strict=True)  # every required field is there
    assert checked.input_tokens_details.cached_tokens == 3
    assert checked.input_tokens_details.cache_write_tokens == (2 if kind in CACHE_WRITES else 0)


@pytest.mark.parametrize("kind", KINDS)
def test_responses_stream_on_every_provider_kind(
    kind: str, oai: openai.OpenAI, mock: MockProvider
) -> None:
    with oai.responses.stream(model=ALIASES[kind], input="Hello") as stream:
        events = list(stream)
        final = stream.get_final_response()

    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == REPLY and len(deltas) > 1, "text arrives piece by piece"
    assert final.output_text == REPLY
    assert final.usage is not None and final.usage.output_tokens == REPLY_WORDS


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_responses_function_call_round_trip_on_every_provider_kind(
    kind: str, streamed: bool, oai: openai.OpenAI, mock: MockProvider
) -> None:
    asked = [{"role": "user", "content": "Weather in Paris?"}]
    headers = {"x-mock-tool-calls": CALL_PARIS}
    if streamed:
        with oai.responses.stream(
            model=ALIASES[kind], input=asked, tools=[WEATHER], extra_headers=headers
        ) as stream:
            events = list(stream)
            first = stream.get_final_response()
        fragments = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
        assert "".join(fragments) == '{"city":"Paris"}'
    else:
        first = oai.responses.create(
            model=ALIASES[kind], input=asked, tools=[WEATHER], extra_headers=headers
        )

    calls = [item for item in first.output if item.type == "function_call"]
    assert [(call.name, json.loads(call.arguments)) for call in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    follow_up = [
        *asked,
        {
            "type": "function_call",
            "call_id": calls[0].call_id,
            "name": "get_weather",
            "arguments": calls[0].arguments,
        },
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21 C"},
    ]
    second = oai.responses.create(model=ALIASES[kind], input=follow_up, tools=[WEATHER])
    assert second.output_text == "Tool results: Sunny, 21 C."


@pytest.mark.parametrize("kind", ["anthropic", "gemini", "compat"])
def test_what_only_openai_can_run_is_refused_naming_it_and_nothing_is_charged(
    kind: str, oai: openai.OpenAI, mock: MockProvider, config: Path, gateway: RunningGateway
) -> None:
    mock.clear()
    before = counter_used(config, "app", "tokens", processor=gateway.processor)
    with pytest.raises(openai.BadRequestError) as built_in:
        oai.responses.create(model=ALIASES[kind], input="Search", tools=[{"type": "web_search"}])
    with pytest.raises(openai.BadRequestError) as stateful:
        oai.responses.create(
            model=ALIASES[kind], input="And then?", previous_response_id="resp_earlier"
        )
    with pytest.raises(openai.BadRequestError) as stored:
        oai.responses.create(model=ALIASES[kind], input="Keep this", store=True)

    assert built_in.value.param == "tools.0" and "web_search" in built_in.value.message
    assert stateful.value.param == "previous_response_id"
    assert stored.value.param == "store"
    assert mock.requests() == []
    assert counter_used(config, "app", "tokens", processor=gateway.processor) == before


def test_stored_responses_chain_where_openai_keeps_them(
    oai: openai.OpenAI, mock: MockProvider
) -> None:
    first = oai.responses.create(model="oa", input="Remember the word 'teal'.", store=True)
    second = oai.responses.create(model="oa", input="Which word?", previous_response_id=first.id)

    assert mock.last_request()["body"]["previous_response_id"] == first.id
    assert second.output_text == REPLY
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens, "the stored turn counts"


@pytest.mark.parametrize("alias", ["oa-short", "ge-short"], ids=["passed-through", "translated"])
def test_a_budget_cuts_a_responses_stream_with_an_error_event_then_refuses(
    alias: str, gateway: RunningGateway, config: Path, mock: MockProvider
) -> None:
    key = f"{BUDGET_KEY}-{alias}"
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as sdk:
        with sdk.responses.stream(
            model=alias,
            input="Hi",
            extra_headers={"x-mock-words": "400", "x-mock-chunk-delay-ms": "5"},
        ) as stream:
            events = list(stream)
        last = events[-1]
        assert last.type == "error"
        assert last.code == "rate_limit_exceeded"
        assert "Limit reached during the stream" in last.message
        assert last.sequence_number == len(events) - 1, "numbered after what came before"
        assert [e for e in events if e.type == "response.output_text.delta"]
        assert not mock.last_request()["stream"]["completed"], "the provider was stopped"
        settles_to(config, f"budget-{alias}", "tokens", BUDGET, processor=gateway.processor)
        with pytest.raises(openai.RateLimitError):
            sdk.responses.create(model=alias, input="Hi")


def test_a_stored_response_is_reachable_only_through_an_alias_the_key_may_use(
    gateway: RunningGateway, oai: openai.OpenAI, mock: MockProvider
) -> None:
    """`narrow` may use `oa` only: it reaches what `oa` stored, not what `oa-team` stored,
    and nothing created outside the gateway with the provider's key."""
    team = oai.responses.create(model="oa-team", input="Team secret plans")
    shared = oai.responses.create(model="oa", input="Shared notes")
    outside = HTTP.post(
        mock.url + "/v1/responses",
        json={"model": "gpt-4o-2024-08-06", "input": "Made without the gateway"},
        headers={"authorization": f"Bearer {PROVIDER_KEYS['openai']}"},
    ).json()

    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=NARROW_KEY, max_retries=0) as narrow:
        assert narrow.responses.retrieve(shared.id).output_text == REPLY
        items = narrow.responses.input_items.list(shared.id)
        assert [item.content[0].text for item in items.data] == ["Shared notes"]  # type: ignore[union-attr]
        for hidden in (team.id, outside["id"]):
            with pytest.raises(openai.NotFoundError):
                narrow.responses.retrieve(hidden)
            with pytest.raises(openai.NotFoundError):
                narrow.responses.delete(hidden)
        with pytest.raises(openai.NotFoundError) as continued:
            narrow.responses.create(model="oa", input="Go on", previous_response_id=team.id)
        assert continued.value.param == "previous_response_id"
        narrow.responses.delete(shared.id)

    assert oai.responses.retrieve(team.id).output_text == REPLY, "its own key still reaches it"
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(outside["id"])
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(shared.id)  # deleted at the provider
    requests = mock.requests()
    assert not [r for r in requests if r["method"] == "DELETE" and team.id in r["path"]]


CODEX_TOOLS = [
    {
        "type": "function",
        "name": "exec_command",
        "description": "Runs a command",
        "strict": False,
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
    },
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Tools for spawning and managing sub-agents.",
        "tools": [
            {
                "type": "function",
                "name": "close_agent",
                "strict": False,
                "parameters": {"type": "object", "properties": {"target": {"type": "string"}}},
            }
        ],
    },
]
"""Tools as Codex CLI 0.171 sends them: functions, and functions grouped in a namespace."""


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_a_codex_cli_turn_works_on_a_translated_alias(
    kind: str, oai: openai.OpenAI, mock: MockProvider
) -> None:
    """A turn shaped as Codex CLI sends it (developer instructions, namespace tools, reasoning
    summary asked for, client metadata, nothing stored), and its follow-up with the call's
    output and an encrypted reasoning item from an earlier turn."""
    codex = {
        "tools": CODEX_TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1",
        "extra_body": {"client_metadata": {"x-codex-turn-metadata": "{}"}},
    }
    turn = [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "You are Codex."}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Close agent a1"}],
        },
    ]
    call = '[{"name": "multi_agent_v1__close_agent", "arguments": {"target": "a1"}}]'
    with oai.responses.stream(
        model=ALIASES[kind], input=turn, extra_headers={"x-mock-tool-calls": call}, **codex
    ) as stream:
        first = stream.get_final_response()

    [function_call] = [item for item in first.output if item.type == "function_call"]
    assert (function_call.namespace, function_call.name) == ("multi_agent_v1", "close_agent")
    tools = mock.last_request()["body"]["tools"]
    assert any("multi_agent_v1__close_agent" in json.dumps(tool) for tool in tools)

    follow_up = [
        *turn,
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-opaque"},
        function_call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": function_call.call_id, "output": "closed"},
    ]
    with oai.responses.stream(model=ALIASES[kind], input=follow_up, **codex) as stream:
        second = stream.get_final_response()
    assert second.output_text == "Tool results: closed."


@pytest.mark.parametrize(
    ("kind", "counted_by"),
    [("openai", "provider"), ("azure", "estimate"), ("anthropic", "estimate")],
)
def test_responses_input_tokens_are_counted_by_openai_and_estimated_elsewhere(
    kind: str, counted_by: str, oai: openai.OpenAI, mock: MockProvider
) -> None:
    mock.clear()
    counted = oai.responses.input_tokens.with_raw_response.count(
        model=ALIASES[kind], input="How many tokens?", instructions=SYSTEM
    )

    assert counted.headers["x-extproc-token-count"] == counted_by
    assert counted.parse().object == "response.input_tokens"
    if counted_by == "provider":
        upstream = mock.last_request()
        assert upstream["path"] == "/v1/responses/input_tokens"
        assert upstream["body"]["model"] == KINDS[kind][1]
        assert counted.parse().input_tokens == provider_input(upstream)
    else:
        assert mock.requests() == []
        assert counted.parse().input_tokens == estimate_tokens([SYSTEM, "How many tokens?"])
