"""Guardrails through the real Envoy and processor, on the mock provider: input blocked and
masked for OpenAI, Anthropic and Responses clients (tool arguments and tool results too),
output masked on JSON answers of every client schema, streams screened at event boundaries
(a card number split at every position never reaches the client), external checks, and what
each call is charged."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import anthropic
import openai
import pytest

from tests.conftest import provider_document, write_provider_keys
from tests.harness import (
    HTTP,
    MockProvider,
    RunningGateway,
    access_log_lines,
    logged_since,
    quota_usage,
    running_gateway,
    settles_to,
    sha256,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.envoy

KEY = "sk-gw-guard-0123456789"
LOG_KEY = "sk-gw-guard-log-0123456789"
EXTERNAL_KEY = "sk-gw-guard-ext-0123456789"
LENIENT_KEY = "sk-gw-guard-lenient-0123456789"
CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
ALIASES = {"openai": "oa", "anthropic": "an", "gemini": "ge"}
TOOL = {
    "type": "function",
    "function": {
        "name": "send_mail",
        "description": "Send a mail",
        "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
    },
}


class Moderation(BaseHTTPRequestHandler):
    """An OpenAI-moderation-shaped classifier: flags any input with the word `forbidden`;
    answers 500 to `explode` and never in time to `sleepy`."""

    seen: ClassVar[list[dict[str, Any]]] = []
    stall = threading.Event()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Moderation.seen.append({"body": body, "authorization": self.headers["authorization"]})
        texts = " ".join(body["input"])
        if "sleepy" in texts:
            Moderation.stall.wait(5)
        if "explode" in texts:
            self.send_response(500)
            self.end_headers()
            return
        flagged = "forbidden" in texts
        answer = {
            "id": "modr-1",
            "model": body.get("model", "omni-moderation-latest"),
            "results": [{"flagged": flagged, "categories": {"violence": flagged}}],
        }
        data = json.dumps(answer).encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway stopped waiting (the `sleepy` case)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def moderation() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Moderation)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/moderations"
    Moderation.stall.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def config(mock: MockProvider, moderation: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("guardrails")
    write_provider_keys(directory)
    (directory / "moderation-key").write_text("mod-secret-0123456789\n")
    models = {
        "oa": {"provider": "openai", "model": "gpt-4o-mini"},
        "an": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
        "ge": {"provider": "gemini", "model": "gemini-2.5-flash"},
        "oa-text": {"provider": "openai", "model": "gpt-3.5-turbo-instruct"},
        "fb": {
            "targets": [
                {"provider": "openai", "model": "gpt-4o-fb"},
                {"provider": "anthropic", "model": "claude-fb", "priority": 1},
            ]
        },
    }
    document = {
        "listen": {"max_request_body": "1MiB"},  # what a stream may hold back: 2 MiB
        "processor": {"message_timeout": "10s"},
        "providers": provider_document(mock.url, directory),
        "models": models,
        "guardrails": {
            "secrets": {
                "detectors": ["credentials", "credit_card"],
                "input": "block",
                "output": "off",
            },
            "pii": {
                "detectors": ["email", "phone"],
                "patterns": {"ticket": {"regex": r"TCK-\d{6}", "max_length": 10}},
                "input": "mask",
                "output": "mask",
            },
            "cards-out": {"detectors": ["credit_card"], "input": "off", "output": "mask"},
            "words": {"deny": ["project falcon"], "input": "log", "output": "off"},
            "moderated": {
                "external": {
                    "url": moderation,
                    "api_key": f"${{file:{directory}/moderation-key}}",
                    "timeout": "1s",
                    "on_error": "deny",
                },
                "input": "block",
                "output": "block",
            },
            "moderated-lenient": {
                "external": {"url": moderation, "timeout": "1s", "on_error": "allow"},
                "input": "block",
                "output": "off",
            },
            "cards-blocked": {"detectors": ["credit_card"], "input": "off", "output": "block"},
        },
        "teams": {"guarded": {"guardrails": ["pii"]}},
        "keys": [
            {
                "id": "app",
                "sha256": sha256(KEY),
                "team": "guarded",
                "models": ["*"],
                "guardrails": ["secrets", "cards-out", "words"],
                "limits": [{"tokens": 10**9, "per": "1d"}],
            },
            {
                "id": "blocking",
                "sha256": sha256(LOG_KEY),
                "models": ["*"],
                "guardrails": ["cards-blocked"],
                "limits": [{"tokens": 10**9, "per": "1d"}],
            },
            {
                "id": "moderated",
                "sha256": sha256(EXTERNAL_KEY),
                "models": ["*"],
                "guardrails": ["moderated"],
                "limits": [{"tokens": 10**9, "per": "1d"}],
            },
            {
                "id": "lenient",
                "sha256": sha256(LENIENT_KEY),
                "models": ["*"],
                "guardrails": ["moderated-lenient"],
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
    with openai_sdk(gateway, KEY) as sdk:
        yield sdk


@pytest.fixture
def ant(gateway: RunningGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic_sdk(gateway, KEY) as sdk:
        yield sdk


def openai_sdk(gateway: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def anthropic_sdk(gateway: RunningGateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


def said(request: dict[str, Any]) -> str:
    """Everything the provider received, as text."""
    return json.dumps(request["body"])


# Input: block and mask, every client schema.


def tokens_used(config: Path, gateway: RunningGateway, key: str = "app") -> float:
    return float(quota_usage(config, gateway.processor)[f"key:{key} tokens 1d *"]["used"])


def test_a_secret_in_the_prompt_is_refused_before_anything_goes_upstream_or_is_charged(
    oai: openai.OpenAI, mock: MockProvider, config: Path, gateway: RunningGateway
) -> None:
    before_requests, before_log = len(mock.requests()), len(access_log_lines(config))
    before_usage = tokens_used(config, gateway)
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(
            model="oa", messages=[{"role": "user", "content": f"my key is {AWS_KEY}"}]
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "guardrail_blocked"
    assert "secrets" in error["message"] and "credentials" in error["message"]
    assert AWS_KEY not in json.dumps(error)
    assert len(mock.requests()) == before_requests
    assert tokens_used(config, gateway) == before_usage
    line = logged_since(config, before_log, "oa")
    assert line["status"] == 400 and line["error_type"] == "guardrail_blocked"
    assert line["guardrails"] == ["input:secrets/credentials:block"]
    assert AWS_KEY not in config.parent.joinpath("access.log").read_text()
    assert AWS_KEY not in config.parent.joinpath("gateway.log").read_text()


def test_an_openai_clients_personal_data_is_masked_in_messages_tool_arguments_and_results(
    oai: openai.OpenAI, mock: MockProvider, config: Path
) -> None:
    before = len(access_log_lines(config))
    oai.chat.completions.create(
        model="oa",
        messages=[
            {"role": "system", "content": f"Escalate to {EMAIL}."},
            {
                "role": "user",
                "content": "Mail my ticket TCK-123456 to support, call +1 415 555 0100",
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "send_mail", "arguments": json.dumps({"to": EMAIL})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": f"sent to {EMAIL}"},
        ],
        tools=[TOOL],  # type: ignore[list-item]
    )
    upstream = said(mock.last_request())
    assert EMAIL not in upstream and "TCK-123456" not in upstream and "555 0100" not in upstream
    body = mock.last_request()["body"]
    assert body["messages"][0]["content"] == "Escalate to [EMAIL]."
    assert body["messages"][1]["content"] == ("Mail my ticket [TICKET] to support, call [PHONE]")
    assert json.loads(body["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {
        "to": "[EMAIL]"
    }
    assert body["messages"][3]["content"] == "sent to [EMAIL]"
    line = logged_since(config, before, "oa")
    assert line["status"] == 200
    assert set(line["guardrails"]) == {
        "input:pii/email:mask",
        "input:pii/ticket:mask",
        "input:pii/phone:mask",
    }


@pytest.mark.parametrize("alias", ["an", "oa"])
def test_an_anthropic_clients_system_prompt_tool_use_and_tool_result_are_masked(
    alias: str, ant: anthropic.Anthropic, mock: MockProvider
) -> None:
    ant.messages.create(
        model=alias,
        max_tokens=100,
        system=[
            {"type": "text", "text": f"Owner: {EMAIL}", "cache_control": {"type": "ephemeral"}}
        ],
        tools=[{"name": "send_mail", "input_schema": {"type": "object"}}],
        messages=[
            {"role": "user", "content": "Send it"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "send_mail",
                        "input": {"to": EMAIL},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": f"ok {EMAIL}"}
                ],
            },
        ],
    )
    upstream = mock.last_request()
    assert EMAIL not in said(upstream)
    assert said(upstream).count("[EMAIL]") == 3
    if alias == "an":  # passed through as the client wrote it, prompt-cache marks and all
        assert upstream["body"]["system"] == [
            {"type": "text", "text": "Owner: [EMAIL]", "cache_control": {"type": "ephemeral"}}
        ]


def test_a_responses_clients_input_items_are_screened(
    oai: openai.OpenAI, mock: MockProvider
) -> None:
    oai.responses.create(
        model="oa",
        instructions=f"Reply to {EMAIL}",
        input=[
            {"role": "user", "content": "Mail the report"},
            {
                "type": "function_call",
                "call_id": "call_9",
                "name": "send_mail",
                "arguments": json.dumps({"to": EMAIL}),
            },
            {"type": "function_call_output", "call_id": "call_9", "output": f"sent to {EMAIL}"},
        ],
        tools=[{"type": "function", "name": "send_mail", "parameters": {"type": "object"}}],
    )
    assert EMAIL not in said(mock.last_request())
    assert said(mock.last_request()).count("[EMAIL]") == 3
    with pytest.raises(openai.BadRequestError) as refused:
        oai.responses.create(model="oa", input=f"card {CARD}")
    assert refused.value.code == "guardrail_blocked"


def test_a_log_policy_lets_the_text_pass_and_says_so(
    oai: openai.OpenAI, mock: MockProvider, config: Path
) -> None:
    before = len(access_log_lines(config))
    oai.chat.completions.create(
        model="oa", messages=[{"role": "user", "content": "Status of Project  Falcon?"}]
    )
    assert "Project  Falcon" in said(mock.last_request())
    assert logged_since(config, before, "oa")["guardrails"] == ["input:words/deny:log"]


# Output: JSON answers in every client schema.

ANSWER = [f"Write to {EMAIL}, or pay with {CARD}."]
MASKED = "Write to [EMAIL], or pay with [CREDIT_CARD]."


@pytest.mark.parametrize("alias", ["oa", "an", "ge"])
def test_json_answers_are_masked_for_openai_clients(alias: str, oai: openai.OpenAI) -> None:
    answer = oai.chat.completions.create(
        model=alias,
        messages=[{"role": "user", "content": "Contact?"}],
        extra_headers={"x-mock-text": json.dumps(ANSWER)},
    )
    assert answer.choices[0].message.content == MASKED


@pytest.mark.parametrize("alias", ["an", "oa"])
def test_json_answers_are_masked_for_anthropic_clients(
    alias: str, ant: anthropic.Anthropic
) -> None:
    answer = ant.messages.create(
        model=alias,
        max_tokens=100,
        messages=[{"role": "user", "content": "Contact?"}],
        extra_headers={"x-mock-text": json.dumps(ANSWER)},
    )
    assert answer.content[0].type == "text" and answer.content[0].text == MASKED


def test_json_answers_are_masked_for_responses_clients(oai: openai.OpenAI) -> None:
    answer = oai.responses.create(
        model="oa", input="Contact?", extra_headers={"x-mock-text": json.dumps(ANSWER)}
    )
    assert answer.output_text == MASKED


def test_tool_call_arguments_in_answers_are_masked(oai: openai.OpenAI) -> None:
    calls = [{"name": "send_mail", "arguments": {"to": EMAIL, "note": f"card {CARD}"}}]
    answer = oai.chat.completions.create(
        model="an",
        messages=[{"role": "user", "content": "Mail"}],
        tools=[TOOL],  # type: ignore[list-item]
        extra_headers={"x-mock-tool-calls": json.dumps(calls)},
    )
    tool_calls = answer.choices[0].message.tool_calls
    assert tool_calls is not None
    arguments = json.loads(tool_calls[0].function.arguments)  # type: ignore[union-attr]
    assert arguments == {"to": "[EMAIL]", "note": "card [CREDIT_CARD]"}


def test_a_blocked_json_answer_becomes_a_refusal_and_is_charged_its_usage(
    gateway: RunningGateway, config: Path
) -> None:
    before_log = len(access_log_lines(config))
    before = tokens_used(config, gateway, "blocking")
    with openai_sdk(gateway, LOG_KEY) as sdk:
        answer = sdk.chat.completions.create(
            model="oa",
            messages=[{"role": "user", "content": "Card?"}],
            extra_headers={"x-mock-text": json.dumps(ANSWER)},
        )
    choice = answer.choices[0]
    assert choice.finish_reason == "content_filter"
    assert CARD not in (choice.message.content or "")
    assert "cards-blocked" in (choice.message.content or "")
    assert answer.usage is not None
    line = logged_since(config, before_log, "oa")
    assert line["guardrails"] == ["output:cards-blocked/credit_card:block"]
    assert line["output_tokens"] == answer.usage.completion_tokens
    settles_to(
        config,
        "blocking",
        "tokens",
        before + answer.usage.total_tokens,
        processor=gateway.processor,
    )


# Output: streams, screened at event boundaries.

STREAMED = f"Card: {CARD} ok"


def stream_chat(
    gateway: RunningGateway, key: str, pieces: list[str], *, alias: str = "oa"
) -> tuple[str, list[dict[str, Any]]]:
    """A streamed chat call through the gateway, read raw: the text the client got, and
    every event's data."""
    body = {
        "model": alias,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Card?"}],
    }
    headers = {"authorization": f"Bearer {key}", "x-mock-text": json.dumps(pieces)}
    events: list[dict[str, Any]] = []
    with HTTP.stream("POST", gateway.url + "/v1/chat/completions", json=body, headers=headers) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    text = "".join(
        choice["delta"].get("content") or ""
        for event in events
        for choice in event.get("choices", ())
    )
    return text, events


def test_a_card_number_split_at_any_position_across_two_events_is_masked(
    gateway: RunningGateway,
) -> None:
    for split in range(1, len(STREAMED)):
        text, _ = stream_chat(gateway, KEY, [STREAMED[:split], STREAMED[split:]])
        assert text == "Card: [CREDIT_CARD] ok", split


def test_a_card_number_split_at_any_position_ends_a_blocking_stream_before_it(
    gateway: RunningGateway, config: Path
) -> None:
    before_log = len(access_log_lines(config))
    for split in range(1, len(STREAMED)):
        text, events = stream_chat(gateway, LOG_KEY, [STREAMED[:split], STREAMED[split:]])
        digits = "".join(char for char in text if char.isdigit())
        assert "4111" not in digits, split
        assert text == "Card: ", split
        assert events[-1]["error"]["code"] == "guardrail_blocked", split
    # A stream ended early is settled and logged just after the client got its end: the next
    # test reads this key's counter and its next log line, so they must all be in.
    wait_until(
        lambda: len(access_log_lines(config)) >= before_log + len(STREAMED) - 1,
        "the blocked streams were not all settled and logged",
    )


def test_a_blocked_stream_is_charged_what_it_streamed_exactly_once(
    gateway: RunningGateway, config: Path
) -> None:
    before_log = len(access_log_lines(config))
    before = tokens_used(config, gateway, "blocking")
    pieces = ["Here ", "it ", "is: ", "4111 ", "1111 ", "1111 ", "1111 ", "thanks"]
    text, events = stream_chat(gateway, LOG_KEY, pieces)
    assert text == "Here it is: " and events[-1]["error"]["code"] == "guardrail_blocked"
    line = logged_since(config, before_log, "oa")
    assert line["error_type"] == "guardrail_blocked"
    assert line["guardrails"] == ["output:cards-blocked/credit_card:block"]
    charged = line["input_tokens"] + line["output_tokens"]
    assert line["output_tokens"] >= 1
    settles_to(config, "blocking", "tokens", before + charged, processor=gateway.processor)


def test_a_clean_stream_flows_word_by_word(gateway: RunningGateway) -> None:
    """Text is held only while a detector could still match: each word (ending in a space)
    leaves as soon as it came, in an event of its own."""
    words = [f"word{chr(ord('a') + index)} " for index in range(20)]
    text, events = stream_chat(gateway, KEY, words)
    assert text == "".join(words)
    contents = [
        choice["delta"]["content"]
        for event in events
        for choice in event.get("choices", ())
        if choice["delta"].get("content")
    ]
    assert contents == words


def test_streamed_tool_arguments_are_masked(gateway: RunningGateway) -> None:
    calls = [{"name": "send_mail", "arguments": {"to": EMAIL}}]
    body = {
        "model": "an",
        "stream": True,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "Mail"}],
    }
    headers = {"authorization": f"Bearer {KEY}", "x-mock-tool-calls": json.dumps(calls)}
    arguments = ""
    with HTTP.stream("POST", gateway.url + "/v1/chat/completions", json=body, headers=headers) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices", ()):
                    for call in choice["delta"].get("tool_calls") or ():
                        arguments += call.get("function", {}).get("arguments") or ""
    assert json.loads(arguments) == {"to": "[EMAIL]"}


def test_an_anthropic_clients_stream_is_masked(ant: anthropic.Anthropic) -> None:
    pieces = [f"Mail {EMAIL[:6]}", f"{EMAIL[6:]} or", " not"]
    with ant.messages.stream(
        model="an",
        max_tokens=100,
        messages=[{"role": "user", "content": "Contact?"}],
        extra_headers={"x-mock-text": json.dumps(pieces)},
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == "Mail [EMAIL] or not"


# External checks.


def moderated_chat(gateway: RunningGateway, key: str, prompt: str, **extra: Any) -> Any:
    with openai_sdk(gateway, key) as sdk:
        return sdk.chat.completions.create(
            model="oa", messages=[{"role": "user", "content": prompt}], **extra
        )


def test_an_external_check_allows_and_denies_with_the_configured_credential(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    Moderation.seen.clear()
    answer = moderated_chat(gateway, EXTERNAL_KEY, "a harmless question")
    assert answer.choices[0].message.content
    prompt, reply = Moderation.seen
    assert prompt["body"]["input"] == ["a harmless question"]
    assert reply["body"]["input"] == [answer.choices[0].message.content]
    assert prompt["authorization"] == "Bearer mod-secret-0123456789"
    before = len(mock.requests())
    with pytest.raises(openai.BadRequestError) as refused:
        moderated_chat(gateway, EXTERNAL_KEY, "something forbidden")
    assert refused.value.code == "guardrail_blocked"
    assert "moderated" in refused.value.message and "external" in refused.value.message
    assert len(mock.requests()) == before
    assert all(EXTERNAL_KEY not in json.dumps(seen) for seen in Moderation.seen)


@pytest.mark.parametrize("trouble", ["explode", "sleepy"])
def test_an_external_check_that_fails_or_is_late_follows_on_error(
    trouble: str, gateway: RunningGateway
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        moderated_chat(gateway, EXTERNAL_KEY, f"please {trouble}")
    assert refused.value.code == "guardrail_blocked"
    answer = moderated_chat(gateway, LENIENT_KEY, f"please {trouble}")
    assert answer.choices[0].message.content


def test_an_external_check_judges_json_answers_and_whole_streams(
    gateway: RunningGateway,
) -> None:
    flagged = json.dumps(["This is ", "forbidden ", "text"])
    answer = moderated_chat(gateway, EXTERNAL_KEY, "hi", extra_headers={"x-mock-text": flagged})
    assert answer.choices[0].finish_reason == "content_filter"
    assert "forbidden" not in answer.choices[0].message.content
    text, events = stream_chat(gateway, EXTERNAL_KEY, json.loads(flagged))
    assert text == "" and events[-1]["error"]["code"] == "guardrail_blocked"
    text, _ = stream_chat(gateway, EXTERNAL_KEY, ["All ", "fine ", "here"])
    assert text == "All fine here"


def test_a_stream_too_long_to_hold_for_an_external_check_is_ended(
    gateway: RunningGateway, config: Path
) -> None:
    """What a stream may hold back while it waits for its external check is bounded (one
    message's limit): a longer answer ends with an error event, none of it delivered."""
    before = len(access_log_lines(config))
    body = {"model": "oa", "stream": True, "messages": [{"role": "user", "content": "Long?"}]}
    headers = {
        "authorization": f"Bearer {EXTERNAL_KEY}",
        "x-mock-words": "4",
        "x-mock-word-bytes": "600000",
    }
    events = []
    with HTTP.stream("POST", gateway.url + "/v1/chat/completions", json=body, headers=headers) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                events.append(json.loads(line[6:]))
    assert [event["error"]["code"] for event in events] == ["answer_too_long"]
    assert logged_since(config, before, "oa")["error_type"] == "answer_too_long"


# Aliases with fallback: every attempt goes through the neutral form, whichever target answers.


@pytest.mark.parametrize("failing", ["", "gpt-4o-fb=429"])
def test_answers_of_an_alias_with_fallback_are_masked_whichever_target_answers(
    failing: str, oai: openai.OpenAI, mock: MockProvider
) -> None:
    headers = {"x-mock-text": json.dumps(ANSWER)} | ({"x-mock-fail": failing} if failing else {})
    answer = oai.responses.create(model="fb", input=f"To {EMAIL}", extra_headers=headers)
    assert answer.output_text == MASKED
    upstream = mock.last_request()
    assert upstream["body"]["model"] == ("claude-fb" if failing else "gpt-4o-fb")
    assert EMAIL not in said(upstream)
    text, _ = stream_chat_on(oai, "fb", [f"Mail {EMAIL[:5]}", f"{EMAIL[5:]}."], headers)
    assert text == "Mail [EMAIL]."


def stream_chat_on(
    oai: openai.OpenAI, alias: str, pieces: list[str], headers: dict[str, str]
) -> tuple[str, None]:
    stream = oai.chat.completions.create(
        model=alias,
        stream=True,
        messages=[{"role": "user", "content": "Mail?"}],
        extra_headers=headers | {"x-mock-text": json.dumps(pieces)},
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices), None


def test_token_counts_are_screened_like_the_calls_they_count_for(
    ant: anthropic.Anthropic, mock: MockProvider
) -> None:
    counted = ant.messages.count_tokens(
        model="an", messages=[{"role": "user", "content": f"Mail {EMAIL}"}]
    )
    assert counted.input_tokens > 0
    upstream = mock.last_request()
    assert upstream["path"].endswith("/count_tokens")
    assert EMAIL not in said(upstream) and "[EMAIL]" in said(upstream)
    with pytest.raises(anthropic.BadRequestError) as refused:
        ant.messages.count_tokens(
            model="an", messages=[{"role": "user", "content": f"key {AWS_KEY}"}]
        )
    assert "blocked by guardrail policy 'secrets'" in refused.value.message


def test_an_anthropic_client_is_refused_in_its_own_schema_on_input_and_output(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    before = len(mock.requests())
    with (
        anthropic_sdk(gateway, KEY) as sdk,
        pytest.raises(anthropic.BadRequestError) as refused,
    ):
        sdk.messages.create(
            model="oa", max_tokens=50, messages=[{"role": "user", "content": f"pay with {CARD}"}]
        )
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "'secrets' (detector: credit_card)" in refused.value.message
    assert CARD not in refused.value.message and len(mock.requests()) == before
    with anthropic_sdk(gateway, LOG_KEY) as sdk:
        answer = sdk.messages.create(
            model="an",
            max_tokens=50,
            messages=[{"role": "user", "content": "Card?"}],
            extra_headers={"x-mock-text": json.dumps(ANSWER)},
        )
    assert answer.stop_reason == "refusal"
    assert answer.content[0].type == "text" and CARD not in answer.content[0].text
