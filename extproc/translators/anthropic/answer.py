"""Anthropic Messages answers ⇄ the neutral form, and reading their usage, model and text.

Anthropic counts cached input apart: `input_tokens` excludes `cache_read_input_tokens` and
`cache_creation_input_tokens`; the neutral usage's input includes both.
"""

from __future__ import annotations

import time
from typing import Any

from extproc.translators.common import new_id, token_count
from extproc.translators.ir import (
    ChatAnswer,
    ChatRequest,
    JsonObject,
    Reasoning,
    StopReason,
    Text,
    ToolCall,
)
from extproc.translators.reasoning import sign
from extproc.usage import Usage

STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
}
ANTHROPIC_STOP: dict[StopReason, str] = {
    "stop": "end_turn",
    "other": "end_turn",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def read_usage(payload: Any) -> Usage | None:
    """Usage from an answer (or a `message_start` message): None without an output count."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict) or "output_tokens" not in usage:
        return None
    return usage_from(usage)


def usage_from(usage: JsonObject) -> Usage:
    cached = token_count(usage, "cache_read_input_tokens")
    written = token_count(usage, "cache_creation_input_tokens")
    return Usage(
        token_count(usage, "input_tokens") + cached + written,
        token_count(usage, "output_tokens"),
        cached_input_tokens=cached,
        cache_write_tokens=written,
    )


def usage_object(usage: Usage) -> JsonObject:
    return {
        "input_tokens": usage.uncached_input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
    }


def read_model(payload: Any) -> str | None:
    model = payload.get("model") if isinstance(payload, dict) else None
    return model if isinstance(model, str) else None


def read_text(payload: Any) -> str:
    blocks = payload.get("content") if isinstance(payload, dict) else None
    return "".join(
        block["text"]
        for block in blocks or ()
        if isinstance(block, dict) and isinstance(block.get("text"), str)
    )


def parse_chat_answer(payload: JsonObject, model: str) -> ChatAnswer:
    parts: list[Text | ToolCall] = []
    for block in payload.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and block.get("text"):
            parts.append(Text(block["text"]))
        elif kind == "tool_use":
            arguments = block.get("input")
            parts.append(
                ToolCall(
                    block.get("id") or new_id("toolu_"),
                    block.get("name") or "",
                    arguments if isinstance(arguments, dict) else {},
                )
            )
    stop_sequence = payload.get("stop_sequence")
    return ChatAnswer(
        id=payload.get("id") or new_id("msg_"),
        model=read_model(payload) or model,
        parts=tuple(parts),
        stop=STOP_REASONS.get(payload.get("stop_reason") or "end_turn", "other"),
        usage=read_usage(payload),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
        created=int(time.time()),
    )


def build_chat_answer(answer: ChatAnswer, request: ChatRequest) -> JsonObject:
    content: list[JsonObject] = []
    for part in answer.parts:
        if isinstance(part, Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, Reasoning):
            if request.reasoning_shown or part.origin is not None:
                content.append(thinking_block(part, shown=request.reasoning_shown))
        else:
            content.append(
                {"type": "tool_use", "id": part.id, "name": part.name, "input": part.arguments}
            )
    built: JsonObject = {
        "id": answer.id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": ANTHROPIC_STOP[answer.stop],
        "stop_sequence": answer.stop_sequence,
        "usage": usage_object(answer.usage or Usage(0, 0)),
    }
    if request.context_edits is not None:
        built["context_management"] = context_management(request)
    return built


def thinking_block(part: Reasoning, *, shown: bool) -> JsonObject:
    """Thinking another provider wrote, under the gateway's signature. Not shown (`display:
    omitted`), it is there only when its provider must see it again, text in the signature."""
    if not shown:
        return {"type": "thinking", "thinking": "", "signature": sign(part, with_text=True)}
    return {"type": "thinking", "thinking": part.text, "signature": sign(part)}


def context_management(request: ChatRequest) -> JsonObject:
    return {"applied_edits": list(request.context_edits or ())}
