"""An Anthropic client's thinking, effort, system messages, tool changes and context edits, as
Claude Code sends them, carried to other kinds of provider; their thinking back as thinking
blocks; and replayed thinking sent only to the provider that wrote it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.errors import BadRequest
from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.anthropic.context_edits import CLEARED_RESULT
from extproc.translators.anthropic.stream import StreamEncoder
from extproc.translators.bedrock import BEDROCK
from extproc.translators.gemini import GEMINI
from extproc.translators.ir import (
    ChatAnswer,
    Reasoning,
    ReasoningDelta,
    StreamEnd,
    TextDelta,
)
from extproc.translators.openai import OPENAI
from extproc.translators.reasoning import read_signature, sign
from extproc.translators.responses import RESPONSES
from extproc.usage import Usage
from tests.unit.translators.helpers import sse_payloads, translate

O3, GPT4O, FLASH = "o3", "gpt-4o", "gemini-2.5-flash"
BEDROCK_CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"
TOOL = {"name": "read", "input_schema": {"type": "object"}}


def messages_body(**fields: Any) -> dict[str, Any]:
    return {
        "model": "alias",
        "max_tokens": 32000,
        "messages": [{"role": "user", "content": "Hi"}],
    } | fields


@pytest.mark.parametrize(
    ("fields", "effort"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 10000}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 30000}}, "high"),
        ({"thinking": {"type": "adaptive"}}, "high"),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}}, "medium"),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}, "xhigh"),
        ({"output_config": {"effort": "low"}}, "low"),
        ({"thinking": {"type": "disabled"}}, None),
    ],
)
def test_thinking_and_effort_become_an_openai_reasoning_effort(
    fields: dict[str, Any], effort: str | None
) -> None:
    _, body = translate(ANTHROPIC, OPENAI, messages_body(**fields), model=O3)
    assert body.get("reasoning_effort") == effort


def test_a_model_without_reasoning_gets_none_unless_the_alias_says_otherwise() -> None:
    request = messages_body(thinking={"type": "adaptive", "display": "omitted"})
    _, body = translate(ANTHROPIC, OPENAI, request, model=GPT4O)
    assert "reasoning_effort" not in body
    _, body = translate(ANTHROPIC, OPENAI, request, model="my-r1", reasoning="always")
    assert body["reasoning_effort"] == "high"
    _, body = translate(ANTHROPIC, OPENAI, request, model=O3, reasoning="drop")
    assert "reasoning_effort" not in body
    with pytest.raises(BadRequest) as refused:
        translate(ANTHROPIC, OPENAI, request, model=O3, reasoning="refuse")
    assert refused.value.param == "thinking"


def test_gemini_gets_the_budget_and_shows_its_thoughts_only_when_the_client_wants_them() -> None:
    shown = messages_body(thinking={"type": "enabled", "budget_tokens": 4000})
    _, body = translate(ANTHROPIC, GEMINI, shown, model=FLASH)
    assert body["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 4000,
        "includeThoughts": True,
    }
    assert body["generationConfig"]["maxOutputTokens"] == 36000, "thinking counts as output"
    omitted = messages_body(thinking={"type": "adaptive", "display": "omitted"})
    _, body = translate(ANTHROPIC, GEMINI, omitted, model=FLASH)
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576}
    _, body = translate(ANTHROPIC, GEMINI, shown, model="gemini-2.0-flash")
    assert "thinkingConfig" not in body["generationConfig"]


def test_claude_on_bedrock_thinks_within_a_cap_above_its_budget() -> None:
    request = messages_body(max_tokens=1000, thinking={"type": "enabled", "budget_tokens": 2048})
    _, body = translate(ANTHROPIC, BEDROCK, request, model=BEDROCK_CLAUDE)
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    }
    assert body["inferenceConfig"]["maxTokens"] == 3048
    _, body = translate(ANTHROPIC, BEDROCK, request, model="amazon.nova-pro-v1:0")
    assert "additionalModelRequestFields" not in body


def test_system_messages_join_the_system_prompt_while_they_hold() -> None:
    request = messages_body(
        system="You are an agent.",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Once only.", "clear_at": "next_user_message"},
            {"role": "system", "content": [{"type": "text", "text": "Always."}]},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
            {"role": "system", "content": "Now.", "output_config": {"effort": "low"}},
        ],
        thinking={"type": "adaptive"},
        output_config={"effort": "high"},
    )
    _, body = translate(ANTHROPIC, OPENAI, request, model=O3)
    system = [m["content"] for m in body["messages"] if m["role"] == "system"]
    assert system == ["You are an agent.", "Always.", "Now."]
    assert [m["role"] for m in body["messages"]] == ["system"] * 3 + ["user", "assistant", "user"]
    assert body["reasoning_effort"] == "low", "a system message's effort holds for its turn"


def tool_names(body: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in body.get("tools", [])]


def test_deferred_tools_are_offered_once_added_or_found() -> None:
    tools = [
        TOOL,
        {"name": "search", "input_schema": {"type": "object"}},
        {"name": "cron", "input_schema": {"type": "object"}, "defer_loading": True},
        {"name": "web", "input_schema": {"type": "object"}, "defer_loading": True},
        {"name": "placeholder", "input_schema": {"type": "object"}, "defer_loading": True},
    ]
    _, body = translate(ANTHROPIC, OPENAI, messages_body(tools=tools))
    assert tool_names(body) == ["read", "search"]
    found = {"type": "tool_reference", "tool_name": "web"}
    conversation = [
        {"role": "user", "content": "Find the web tool"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "search", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [found]}],
        },
        {
            "role": "system",
            "content": [
                {"type": "tool_addition", "tool": {"type": "tool_reference", "name": "cron"}},
                {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "read"}},
            ],
        },
    ]
    _, body = translate(ANTHROPIC, OPENAI, messages_body(tools=tools, messages=conversation))
    assert tool_names(body) == ["search", "cron", "web"]
    [result] = [m for m in body["messages"] if m["role"] == "tool"]
    assert result["content"] == "Tool web is now available."


def assistant_turn(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    use = {"type": "tool_use", "id": "t1", "name": "read", "input": {}}
    return [
        {"role": "user", "content": "Read it"},
        {"role": "assistant", "content": [*blocks, use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
    ]


def test_replayed_thinking_reaches_only_the_provider_that_wrote_and_signed_it() -> None:
    from_bedrock = Reasoning("Bedrock thought.", "c2lnbmVk", "bedrock")
    from_gemini = Reasoning("Gemini thought.")
    blocks = (
        {"type": "thinking", "thinking": "Claude thought.", "signature": "EqQBCkYIBxgC"},
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
        {"type": "thinking", "thinking": from_gemini.text, "signature": sign(from_gemini)},
        {"type": "thinking", "thinking": from_bedrock.text, "signature": sign(from_bedrock)},
    )
    request = messages_body(tools=[TOOL], messages=assistant_turn(*blocks))
    _, body = translate(ANTHROPIC, BEDROCK, request, model=BEDROCK_CLAUDE)
    assistant = body["messages"][1]["content"]
    assert assistant[0] == {
        "reasoningContent": {"reasoningText": {"text": "Bedrock thought.", "signature": "c2lnbmVk"}}
    }
    assert [next(iter(block)) for block in assistant] == ["reasoningContent", "toolUse"]
    for provider, model in ((OPENAI, O3), (GEMINI, FLASH)):
        _, body = translate(ANTHROPIC, provider, request, model=model)
        sent = orjson.dumps(body).decode()
        assert not any(f"{who} thought." in sent for who in ("Claude", "Gemini", "Bedrock"))


def test_anthropic_itself_gets_its_own_thinking_and_never_the_gateways() -> None:
    relayed = sign(Reasoning("Gemini thought."))
    own = {"type": "thinking", "thinking": "Claude thought.", "signature": "EqQBCkYIBxgC"}
    request = messages_body(
        tools=[TOOL],
        messages=assistant_turn(
            own, {"type": "thinking", "thinking": "Gemini thought.", "signature": relayed}
        ),
    )
    _, body = translate(ANTHROPIC, ANTHROPIC, request)
    assert [b["type"] for b in body["messages"][1]["content"]] == ["thinking", "tool_use"]
    assert body["messages"][1]["content"][0] == own
    untouched = messages_body(tools=[TOOL], messages=assistant_turn(own))
    assert translate(ANTHROPIC, ANTHROPIC, untouched)[1]["messages"] is untouched["messages"]


GEMINI_ANSWER = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [{"text": "Weighing it.", "thought": True}, {"text": "Answer."}],
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 5,
        "candidatesTokenCount": 2,
        "thoughtsTokenCount": 7,
    },
}


def test_thoughts_come_back_as_thinking_to_anthropic_clients_only() -> None:
    shown = messages_body(thinking={"type": "enabled", "budget_tokens": 2048})
    translation, _ = translate(ANTHROPIC, GEMINI, shown, model=FLASH)
    answer = orjson.loads(translation.answer(GEMINI_ANSWER, fallback_usage=Usage(0, 0)))
    thinking, text = answer["content"]
    assert (thinking["type"], thinking["thinking"], text["text"]) == (
        "thinking",
        "Weighing it.",
        "Answer.",
    )
    assert read_signature("Weighing it.", thinking["signature"]).origin is None
    assert answer["usage"]["output_tokens"] == 9, "thinking is charged as output"
    omitted = messages_body(thinking={"type": "adaptive", "display": "omitted"})
    translation, _ = translate(ANTHROPIC, GEMINI, omitted, model=FLASH)
    answer = orjson.loads(translation.answer(GEMINI_ANSWER, fallback_usage=Usage(0, 0)))
    assert [block["type"] for block in answer["content"]] == ["text"]
    openai_request = {"model": "a", "messages": [{"role": "user", "content": "Hi"}]}
    translation, _ = translate(OPENAI, GEMINI, openai_request, model=FLASH)
    answer = orjson.loads(translation.answer(GEMINI_ANSWER, fallback_usage=Usage(0, 0)))
    assert answer["choices"][0]["message"]["content"] == "Answer."


def test_hidden_thinking_a_provider_needs_back_travels_inside_the_signature() -> None:
    """`display: omitted` (Claude Code's default): Claude on Bedrock still needs its signed
    thinking with the next tool result, so the client gets an empty block that carries it."""
    omitted = messages_body(thinking={"type": "adaptive", "display": "omitted"})
    translation, _ = translate(ANTHROPIC, BEDROCK, omitted, model=BEDROCK_CLAUDE)
    encoder = translation.encoder()
    assert isinstance(encoder, StreamEncoder)
    raw = b"".join(
        encoder.encode(event)
        for event in (
            ReasoningDelta("Bedrock thought."),
            ReasoningDelta("", "c2lnbmVk", "bedrock"),
            TextDelta("Answer."),
            StreamEnd(),
        )
    )
    events = [data for _, data in sse_payloads(raw)]
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert [block["type"] for block in starts] == ["thinking", "text"]
    [signature] = [
        e["delta"]["signature"] for e in events if e["type"] == "content_block_delta"
        if e["delta"]["type"] == "signature_delta"
    ]  # fmt: skip
    assert not any(e.get("delta", {}).get("type") == "thinking_delta" for e in events)
    replayed = read_signature("", signature)
    assert replayed == Reasoning("Bedrock thought.", "c2lnbmVk", "bedrock")
    parts = (Reasoning("Bedrock thought.", "c2lnbmVk", "bedrock"),)
    answer = ChatAnswer("msg_1", "m", parts, "stop", None)
    built = ANTHROPIC.client.build_chat_answer(answer, translation.request)  # type: ignore[union-attr,arg-type]
    assert built["content"][0]["thinking"] == ""
    assert read_signature("", built["content"][0]["signature"]).text == "Bedrock thought."


def tool_conversation(count: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Read them"}]
    for n in range(count):
        use = {
            "type": "tool_use",
            "id": f"t{n}",
            "name": "read" if n else "keep",
            "input": {"n": n},
        }
        result = {"type": "tool_result", "tool_use_id": f"t{n}", "content": "result " * 100}
        messages += [{"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
    return messages


def edited(edit: dict[str, Any], messages: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
    tools = [TOOL, {"name": "keep", "input_schema": {"type": "object"}}]
    request = messages_body(messages=messages, tools=tools, context_management={"edits": [edit]})
    translation, body = translate(ANTHROPIC, OPENAI, request)
    answer = ChatAnswer("msg_1", "m", (), "stop", None)
    built = ANTHROPIC.client.build_chat_answer(answer, translation.request)  # type: ignore[union-attr,arg-type]
    return built["context_management"]["applied_edits"], body


def results(body: dict[str, Any]) -> list[bool]:
    return [m["content"] == CLEARED_RESULT for m in body["messages"] if m["role"] == "tool"]


def test_tool_uses_are_cleared_past_the_trigger_but_the_last_few_and_the_excluded() -> None:
    edit = {
        "type": "clear_tool_uses_20250919",
        "trigger": {"type": "input_tokens", "value": 500},
        "keep": {"type": "tool_uses", "value": 2},
        "exclude_tools": ["keep"],
        "clear_tool_inputs": True,
    }
    [applied], body = edited(edit, tool_conversation(6))
    assert results(body) == [False, True, True, True, False, False]
    assert (applied["type"], applied["cleared_tool_uses"]) == ("clear_tool_uses_20250919", 3)
    assert applied["cleared_input_tokens"] > 3 * 100
    calls = [m["tool_calls"][0] for m in body["messages"] if m["role"] == "assistant"]
    assert [c["function"]["arguments"] for c in calls][1:4] == ["{}", "{}", "{}"]
    assert (
        edited(edit | {"trigger": {"type": "input_tokens", "value": 10**6}}, tool_conversation(6))[
            0
        ]
        == []
    )
    least = edit | {"clear_at_least": {"type": "input_tokens", "value": 10**6}}
    assert edited(least, tool_conversation(6))[0] == [], "not worth clearing: nothing cleared"
    by_count = {"type": "clear_tool_uses_20250919", "trigger": {"type": "tool_uses", "value": 3}}
    [applied], _ = edited(by_count, tool_conversation(5))
    assert applied["cleared_tool_uses"] == 2


def test_thinking_of_older_turns_is_cleared_and_all_of_it_kept_on_request() -> None:
    relayed = {
        "type": "thinking",
        "thinking": "Thought.",
        "signature": sign(Reasoning("T", "s", "bedrock")),
    }
    messages = tool_conversation(3)
    for message in messages:
        if message["role"] == "assistant":
            message["content"].insert(0, relayed)
    [applied], _ = edited({"type": "clear_thinking_20251015"}, messages)
    assert (applied["cleared_thinking_turns"], applied["type"]) == (2, "clear_thinking_20251015")
    keep_all = {"type": "clear_thinking_20251015", "keep": "all"}
    assert edited(keep_all, messages)[0] == []


def test_compaction_is_refused_by_name() -> None:
    request = messages_body(context_management={"edits": [{"type": "compact_20260112"}]})
    with pytest.raises(BadRequest) as refused:
        translate(ANTHROPIC, OPENAI, request)
    assert refused.value.param == "context_management.edits.0"


def test_openai_clients_still_get_no_thinking_from_anthropic() -> None:
    request = {"model": "m", "input": "Hi", "reasoning": {"effort": "high"}}
    _, body = translate(RESPONSES, ANTHROPIC, request, model="claude-sonnet-4-5")
    assert "thinking" not in body


def test_an_openai_compatible_reasoning_server_shows_its_thinking_to_anthropic_clients() -> None:
    request = messages_body(thinking={"type": "enabled", "budget_tokens": 2048})
    translation, _ = translate(ANTHROPIC, OPENAI, request, model="gpt-oss-120b")
    completion = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "message": {"role": "assistant", "content": "Answer.", "reasoning_content": "Hm."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }
    answer = orjson.loads(translation.answer(completion, fallback_usage=Usage(0, 0)))
    assert [(b["type"], b.get("thinking", b.get("text"))) for b in answer["content"]] == [
        ("thinking", "Hm."),
        ("text", "Answer."),
    ]
