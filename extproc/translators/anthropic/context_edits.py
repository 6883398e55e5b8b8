"""Anthropic's context editing (`context_management.edits`), done by the gateway for targets
that cannot do it themselves: what the edits clear from the conversation, and the report
(`applied_edits`) Anthropic gives back.

Two edits clear content and are carried out as Anthropic documents them: tool uses
(`clear_tool_uses_20250919`: once the prompt passes the trigger, the results — and, if asked,
the inputs — of all but the last `keep` tool uses are replaced by a placeholder, unless fewer
than `clear_at_least` tokens would go) and thinking (`clear_thinking_20251015`: the thinking
of all but the last `keep` assistant turns that have some). Token counts are the gateway's
estimate (about four characters a token), not the target's tokenizer. Compaction summarises
with Anthropic's own model and is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson

from extproc.translators.common import expect, invalid, untranslatable
from extproc.translators.ir import (
    ChatRequest,
    JsonObject,
    Message,
    Part,
    Reasoning,
    Text,
    ToolCall,
    ToolResult,
)

CLEARED_RESULT = "[This tool result was cleared to save context.]"
_CHARS_PER_TOKEN = 4
_TOOL_USES = "clear_tool_uses_20250919"
_THINKING = "clear_thinking_20251015"


def apply_context_edits(request: ChatRequest, config: Any, provider: str) -> ChatRequest:
    if config is None:
        return request
    edits = expect(config, dict, "context_management", "an object").get("edits") or []
    expect(edits, list, "context_management.edits", "an array")
    applied: list[JsonObject] = []
    for index, edit in enumerate(edits):
        param = f"context_management.edits.{index}"
        kind = expect(edit, dict, param, "an object").get("type")
        if kind == _TOOL_USES:
            request, report = _clear_tool_uses(request, _ToolUsesEdit.parse(edit, param))
        elif kind == _THINKING:
            request, report = _clear_thinking(request, _thinking_turns_kept(edit, param))
        else:
            raise untranslatable(param, provider, f"context edit {kind!r}")
        if report is not None:
            applied.append(report)
    return replace(request, context_edits=tuple(applied))


@dataclass(frozen=True, slots=True)
class _ToolUsesEdit:
    trigger_kind: str
    trigger: int
    keep: int
    clear_at_least: int
    exclude: frozenset[str]
    clear_inputs: bool | frozenset[str]

    @classmethod
    def parse(cls, edit: JsonObject, param: str) -> _ToolUsesEdit:
        trigger_kind, trigger = _threshold(
            edit.get("trigger"), f"{param}.trigger", ("input_tokens", "tool_uses"), 100_000
        )
        _, keep = _threshold(edit.get("keep"), f"{param}.keep", ("tool_uses",), 3)
        _, least = _threshold(
            edit.get("clear_at_least"), f"{param}.clear_at_least", ("input_tokens",), 0
        )
        exclude = expect(
            edit.get("exclude_tools") or [], list, f"{param}.exclude_tools", "an array"
        )
        inputs = edit.get("clear_tool_inputs") or False
        if isinstance(inputs, list):
            inputs = frozenset(
                expect(name, str, f"{param}.clear_tool_inputs", "names") for name in inputs
            )
        else:
            expect(inputs, bool, f"{param}.clear_tool_inputs", "a boolean or an array of names")
        return cls(trigger_kind, trigger, keep, least, frozenset(exclude), inputs)

    def clears_input_of(self, tool: str) -> bool:
        inputs = self.clear_inputs
        return inputs is True or (isinstance(inputs, frozenset) and tool in inputs)


def _threshold(value: Any, param: str, kinds: tuple[str, ...], default: int) -> tuple[str, int]:
    if value is None:
        return kinds[0], default
    expect(value, dict, param, "an object")
    kind = value.get("type")
    if kind not in kinds:
        raise invalid(f"{param}.type", f"must be {' or '.join(kinds)}")
    return kind, expect(value.get("value"), int, f"{param}.value", "an integer")


def _clear_tool_uses(
    request: ChatRequest, edit: _ToolUsesEdit
) -> tuple[ChatRequest, JsonObject | None]:
    calls = [
        part for message in request.messages for part in message.parts if isinstance(part, ToolCall)
    ]
    reached = len(calls) if edit.trigger_kind == "tool_uses" else estimate_tokens(request)
    if reached <= edit.trigger:
        return request, None
    kept = calls[len(calls) - edit.keep :] if edit.keep else []
    cleared = {
        call.id: call for call in calls if call not in kept and call.name not in edit.exclude
    }
    inputs = {call_id for call_id, call in cleared.items() if edit.clears_input_of(call.name)}
    freed = 0
    messages = []
    for message in request.messages:
        parts: list[Part] = []
        for part in message.parts:
            edited = part
            if isinstance(part, ToolResult) and part.call_id in cleared:
                freed += _tokens(_content(part)) - _tokens(CLEARED_RESULT)
                edited = replace(part, content=(Text(CLEARED_RESULT),))
            elif isinstance(part, ToolCall) and part.id in inputs:
                freed += _tokens(part.arguments)
                edited = replace(part, arguments={})
            parts.append(edited)
        messages.append(Message(message.role, tuple(parts)))
    if not cleared or freed < edit.clear_at_least:
        return request, None
    report = {
        "type": _TOOL_USES,
        "cleared_tool_uses": len(cleared),
        "cleared_input_tokens": max(0, freed),
    }
    return replace(request, messages=tuple(messages)), report


def _thinking_turns_kept(edit: JsonObject, param: str) -> int | None:
    """How many of the latest assistant turns keep their thinking; None: all."""
    keep = edit.get("keep")
    if keep is None:
        return 1
    if keep == "all" or (isinstance(keep, dict) and keep.get("type") == "all"):
        return None
    _, turns = _threshold(keep, f"{param}.keep", ("thinking_turns",), 1)
    return turns


def _clear_thinking(
    request: ChatRequest, keep: int | None
) -> tuple[ChatRequest, JsonObject | None]:
    thinking_turns = [
        index
        for index, message in enumerate(request.messages)
        if message.role == "assistant" and any(isinstance(p, Reasoning) for p in message.parts)
    ]
    if keep is None or len(thinking_turns) <= keep:
        return request, None
    cleared = set(thinking_turns[: len(thinking_turns) - keep])
    freed = sum(
        _tokens(part.text)
        for index in cleared
        for part in request.messages[index].parts
        if isinstance(part, Reasoning)
    )
    messages = tuple(
        Message(m.role, tuple(p for p in m.parts if not isinstance(p, Reasoning)))
        if index in cleared
        else m
        for index, m in enumerate(request.messages)
    )
    report = {
        "type": _THINKING,
        "cleared_thinking_turns": len(cleared),
        "cleared_input_tokens": freed,
    }
    return replace(request, messages=messages), report


def estimate_tokens(request: ChatRequest) -> int:
    """The prompt's size as the edits' triggers see it."""
    tools = [(tool.name, tool.description, tool.parameters) for tool in request.tools]
    return (
        _tokens(request.system)
        + _tokens(tools)
        + sum(_tokens(_content(part)) for message in request.messages for part in message.parts)
    )


def _content(part: Part) -> Any:
    if isinstance(part, Text):
        return part.text
    if isinstance(part, ToolCall):
        return part.arguments
    if isinstance(part, ToolResult):
        return [_content(item) for item in part.content]
    if isinstance(part, Reasoning):
        return part.text
    return part.data or part.url or ""


def _tokens(value: Any) -> int:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return len(text) // _CHARS_PER_TOKEN
