"""Claude Code on any model, through the real Envoy and processor: an Anthropic client's
thinking, effort and context editing reach OpenAI-, Gemini- and Bedrock-kind aliases as each
provider's own reasoning control (or not at all, for a model without one), thinking comes back
as thinking blocks under the gateway's signature, and replayed thinking reaches only the
provider that wrote it. Then the real Claude Code CLI, a tool round trip on every kind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from mockprovider.bedrock import TEST_CREDENTIALS, THINKING_SIGNATURE
from mockprovider.script import THOUGHT

from tests.conftest import provider_document, write_provider_keys
from tests.harness import ROOT, MockProvider, RunningGateway, running_gateway, sha256, write_config

pytestmark = pytest.mark.envoy

KEY = "sk-gw-claude-code-0123456789"
BEDROCK_MODEL = "anthropic.claude-sonnet-4-20250514-v1:0"
ALIASES = {
    "openai": "gpt-4o",  # no reasoning control
    "openai-reasoning": "o3",
    "gemini": "gemini-2.5-flash",
    "bedrock": BEDROCK_MODEL,
    "anthropic": "claude-sonnet-4-5",
}
[(ACCESS_KEY, SECRET_KEY)] = TEST_CREDENTIALS.items()
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}
READ_FILE = {
    "name": "read_file",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}
CALL_READ = json.dumps([{"name": "read_file", "arguments": {"path": "notes.txt"}}])
THINKING = {"type": "enabled", "budget_tokens": 2048}
CLAUDE_CODE = ROOT / "tests" / "claude-code" / "node_modules" / ".bin" / "claude"


@pytest.fixture(scope="module")
def gateway(
    mock: MockProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("claude-code")
    write_provider_keys(directory)
    providers = provider_document(mock.url, directory)
    providers["bedrock"] = {"kind": "bedrock", "region": "us-east-1", "base_url": mock.url}
    kinds = {alias: alias.split("-")[0] for alias in ALIASES}
    document = {
        "providers": providers,
        "models": {
            alias: {"provider": kinds[alias], "model": model, "max_output_tokens": 4096}
            for alias, model in ALIASES.items()
        }
        | {"strict": {"provider": "openai", "model": "gpt-4o", "reasoning": "refuse"}},
        "keys": [{"id": "coder", "sha256": sha256(KEY), "models": ["*"]}],
    }
    config = write_config(directory, document)
    with running_gateway(config, directory / "gateway.log", env=AWS_ENV) as running:
        yield running


@pytest.fixture
def claude(gateway: RunningGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0) as client:
        yield client


def tool_round_trip(
    claude: anthropic.Anthropic, mock: MockProvider, alias: str, **fields: Any
) -> tuple[Any, Any, list[dict[str, Any]]]:
    """A first turn that calls a tool, then the follow-up with the call's result and the
    first answer's blocks as Claude Code sends them back; the provider's two requests."""
    mock.clear()
    question = [{"role": "user", "content": "What does notes.txt say?"}]
    first = claude.messages.create(
        model=alias,
        max_tokens=8192,
        messages=question,  # type: ignore[arg-type]
        tools=[READ_FILE],  # type: ignore[list-item]
        extra_headers={"x-mock-tool-calls": CALL_READ},
        **fields,
    )
    [call] = [block for block in first.content if block.type == "tool_use"]
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "hello"}
    second = claude.messages.create(
        model=alias,
        max_tokens=8192,
        messages=[
            *question,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": [result]},
        ],  # type: ignore[arg-type]
        tools=[READ_FILE],  # type: ignore[list-item]
        **fields,
    )
    return first, second, [request["body"] for request in mock.requests()]


def test_thinking_on_a_model_without_reasoning_is_not_asked_for_and_the_turn_succeeds(
    claude: anthropic.Anthropic, mock: MockProvider
) -> None:
    first, second, sent = tool_round_trip(claude, mock, "openai", thinking=THINKING)
    assert [block.type for block in first.content] == ["tool_use"]
    assert second.content[0].type == "text" and second.content[0].text == "Tool results: hello."
    assert all("reasoning_effort" not in body for body in sent)


def test_an_alias_may_refuse_thinking_instead(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(
            model="strict", max_tokens=100, messages=[{"role": "user", "content": "Hi"}],
            thinking=THINKING,  # type: ignore[arg-type]
        )  # fmt: skip
    assert "'thinking' cannot be sent to this model" in refused.value.message


def test_thinking_and_effort_reach_an_openai_reasoning_model_as_its_effort(
    claude: anthropic.Anthropic, mock: MockProvider
) -> None:
    _, second, sent = tool_round_trip(
        claude, mock, "openai-reasoning",
        thinking={"type": "adaptive"}, extra_body={"output_config": {"effort": "low"}},
    )  # fmt: skip
    assert [body["reasoning_effort"] for body in sent] == ["low", "low"]
    assert second.content[-1].text == "Tool results: hello."  # type: ignore[union-attr]
    _, _, sent = tool_round_trip(claude, mock, "openai-reasoning", thinking=THINKING)
    assert sent[0]["reasoning_effort"] == "low", "a 2,048-token budget is a low effort"


def test_gemini_thinks_within_the_budget_and_its_thoughts_come_back_as_thinking(
    claude: anthropic.Anthropic, mock: MockProvider
) -> None:
    first, second, sent = tool_round_trip(claude, mock, "gemini", thinking=THINKING)
    thinking = sent[0]["generationConfig"]["thinkingConfig"]
    assert thinking == {"thinkingBudget": 2048, "includeThoughts": True}
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    block = first.content[0]
    assert block.thinking == THOUGHT  # type: ignore[union-attr]
    assert block.signature.startswith("extproc.thinking.")  # type: ignore[union-attr]
    # Replayed, the relayed thinking is not Gemini's to read again: it is left out.
    replayed = json.dumps(sent[1]["contents"])
    assert THOUGHT not in replayed
    assert [b.type for b in second.content] == ["thinking", "text"]
    assert first.usage.output_tokens > 0


def test_bedrock_claude_gets_its_own_signed_thinking_back_with_the_tool_result(
    claude: anthropic.Anthropic, mock: MockProvider
) -> None:
    first, second, sent = tool_round_trip(claude, mock, "bedrock", thinking=THINKING)
    thinking = sent[0]["additionalModelRequestFields"]["thinking"]
    assert thinking == {"type": "enabled", "budget_tokens": 2048}
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    # The mock refuses a tool result whose turn does not start with its signed thinking.
    [assistant] = [m for m in sent[1]["messages"] if m["role"] == "assistant"]
    reasoning = assistant["content"][0]["reasoningContent"]["reasoningText"]
    assert reasoning == {"text": THOUGHT, "signature": THINKING_SIGNATURE}
    assert second.content[-1].text == "Tool results: hello."  # type: ignore[union-attr]


@pytest.mark.parametrize("alias", ["gemini", "bedrock"])
def test_streamed_thinking_comes_first_and_is_signed(
    alias: str, claude: anthropic.Anthropic
) -> None:
    with claude.messages.stream(
        model=alias, max_tokens=8192, thinking=THINKING,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "Hi"}],
    ) as stream:  # fmt: skip
        kinds = [event.delta.type for event in stream if event.type == "content_block_delta"]
        final = stream.get_final_message()
    assert kinds[0] == "thinking_delta" and "text_delta" in kinds
    assert kinds.index("signature_delta") < kinds.index("text_delta")
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].signature.startswith("extproc.thinking.")  # type: ignore[union-attr]


def test_anthropic_never_sees_thinking_the_gateway_relayed(
    claude: anthropic.Anthropic, mock: MockProvider
) -> None:
    """A conversation that moved from Gemini to Claude (fallback, or a changed alias)."""
    first, _, _ = tool_round_trip(claude, mock, "gemini", thinking=THINKING)
    [call] = [block for block in first.content if block.type == "tool_use"]
    mock.clear()
    answer = claude.messages.create(
        model="anthropic",
        max_tokens=8192,
        messages=[
            {"role": "user", "content": "What does notes.txt say?"},
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "hi"}],
            },
        ],  # type: ignore[arg-type]
        tools=[READ_FILE],  # type: ignore[list-item]
    )
    assert answer.content[0].text == "Tool results: hi."  # type: ignore[union-attr]
    assistant = mock.last_request()["body"]["messages"][1]
    assert [block["type"] for block in assistant["content"]] == ["tool_use"]


def test_context_editing_is_done_by_the_gateway_and_reported(
    claude: anthropic.Anthropic, mock: MockProvider
) -> None:
    calls = [(f"toolu_{n}", f"result number {n} " * 50) for n in range(5)]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Read them all"}]
    for call_id, text in calls:
        use = {"type": "tool_use", "id": call_id, "name": "read_file", "input": {"path": call_id}}
        result = {"type": "tool_result", "tool_use_id": call_id, "content": text}
        messages += [
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [result]},
        ]
    edit = {
        "type": "clear_tool_uses_20250919",
        "trigger": {"type": "input_tokens", "value": 100},
        "keep": {"type": "tool_uses", "value": 2},
    }
    mock.clear()
    answer = claude.beta.messages.create(
        model="openai", max_tokens=100, messages=messages,  # type: ignore[arg-type]
        tools=[READ_FILE], context_management={"edits": [edit]},  # type: ignore[list-item,typeddict-item]
        betas=["context-management-2025-06-27"],
    )  # fmt: skip
    [applied] = answer.context_management.applied_edits  # type: ignore[union-attr]
    assert (applied.type, applied.cleared_tool_uses) == ("clear_tool_uses_20250919", 3)
    assert applied.cleared_input_tokens > 0
    sent = [m for m in mock.last_request()["body"]["messages"] if m["role"] == "tool"]
    assert ["result number" in m["content"] for m in sent] == [False, False, False, True, True]
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.beta.messages.create(
            model="openai", max_tokens=100, messages=messages,  # type: ignore[arg-type]
            context_management={"edits": [{"type": "compact_20260112"}]},  # type: ignore[list-item]
        )  # fmt: skip
    assert "context_management.edits.0" in refused.value.message


@pytest.mark.parametrize("alias", ["openai", "gemini", "bedrock", "anthropic"])
def test_count_tokens_answers_a_claude_code_turn_on_every_kind(
    alias: str, claude: anthropic.Anthropic
) -> None:
    counted = claude.beta.messages.count_tokens(
        model=alias,
        system=[
            {"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}}
        ],
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "The working directory is /tmp."},
        ],  # type: ignore[list-item]
        tools=[READ_FILE | {"defer_loading": True}],  # type: ignore[list-item]
        thinking={"type": "adaptive", "display": "omitted"},  # type: ignore[typeddict-item]
        output_config={"effort": "high"},
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        betas=["context-management-2025-06-27"],
    )
    assert counted.input_tokens > 0


# The real client.


@pytest.fixture(scope="module")
def claude_code() -> Path:
    if not CLAUDE_CODE.exists():
        reason = "needs npm" if shutil.which("npm") is None else "run `make claude-code` first"
        pytest.skip(f"the Claude Code CLI is not installed ({reason})")
    return CLAUDE_CODE


@pytest.mark.parametrize("alias", list(ALIASES))
def test_claude_code_runs_a_tool_using_turn_on_every_kind(
    alias: str, claude_code: Path, gateway: RunningGateway, mock: MockProvider, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    read = [{"name": "Read", "arguments": {"file_path": str(tmp_path / "notes.txt")}}]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_AUTH_TOKEN": KEY,
        "ANTHROPIC_MODEL": alias,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": alias,
        "ANTHROPIC_CUSTOM_HEADERS": f"x-mock-tool-calls: {json.dumps(read)}",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    mock.clear()
    prompt = "Read notes.txt and tell me what it says"
    done = subprocess.run(
        [str(claude_code), "-p", prompt, "--allowedTools", "Read"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # The mock answers a tool result by quoting it: the file's text went through the tool.
    assert "Tool results: " in done.stdout and "hello" in done.stdout, done.stdout
    assert "API Error" not in done.stdout + done.stderr
