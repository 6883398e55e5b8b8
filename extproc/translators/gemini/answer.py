"""Gemini answers (`GenerateContentResponse`, `BatchEmbedContentsResponse`) → the neutral form.

Gemini counts thinking apart (`thoughtsTokenCount` beside `candidatesTokenCount`); the neutral
output includes it. A function call ends with `finishReason: STOP`, so calls decide the stop
reason. Gemini's function calls may come without an id: the gateway gives them one.
"""

from __future__ import annotations

import time
from typing import Any

from extproc.translators.common import new_id, token_count
from extproc.translators.ir import (
    ChatAnswer,
    EmbeddingAnswer,
    JsonObject,
    Reasoning,
    StopReason,
    Text,
    ToolCall,
)
from extproc.usage import Usage

_FILTERED = (
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
)  # fmt: skip
FINISH_REASONS: dict[str, StopReason] = {
    "STOP": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(_FILTERED, "content_filter"),
}


def stop_reason(finish: str | None, called: bool, blocked: bool) -> StopReason:
    if blocked:
        return "content_filter"
    reason = FINISH_REASONS.get(finish or "STOP", "other")
    return "tool_calls" if called and reason == "stop" else reason


def read_usage(payload: Any) -> Usage | None:
    metadata = payload.get("usageMetadata") if isinstance(payload, dict) else None
    if not isinstance(metadata, dict) or not (
        "promptTokenCount" in metadata or "candidatesTokenCount" in metadata
    ):
        return None
    thoughts = token_count(metadata, "thoughtsTokenCount")
    tool_prompt = token_count(metadata, "toolUsePromptTokenCount")
    return Usage(
        token_count(metadata, "promptTokenCount") + tool_prompt,
        token_count(metadata, "candidatesTokenCount") + thoughts,
        cached_input_tokens=token_count(metadata, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def read_model(payload: Any) -> str | None:
    model = payload.get("modelVersion") if isinstance(payload, dict) else None
    return model if isinstance(model, str) else None


def candidate_parts(payload: Any) -> list[JsonObject]:
    """The first candidate's parts (the gateway asks for one candidate)."""
    candidates = payload.get("candidates") if isinstance(payload, dict) else None
    candidate = candidates[0] if isinstance(candidates, list) and candidates else None
    content = candidate.get("content") if isinstance(candidate, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    return [part for part in parts or () if isinstance(part, dict)]


def finish_of(payload: Any) -> str | None:
    candidates = payload.get("candidates") if isinstance(payload, dict) else None
    candidate = candidates[0] if isinstance(candidates, list) and candidates else None
    finish = candidate.get("finishReason") if isinstance(candidate, dict) else None
    return finish if isinstance(finish, str) else None


def blocked(payload: Any) -> bool:
    """The prompt itself was blocked: no candidates, a `promptFeedback.blockReason`."""
    feedback = payload.get("promptFeedback") if isinstance(payload, dict) else None
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def is_thought(part: JsonObject) -> bool:
    return part.get("thought") is True


def function_call(part: JsonObject) -> ToolCall | None:
    call = part.get("functionCall")
    if not isinstance(call, dict):
        return None
    arguments = call.get("args")
    return ToolCall(
        call.get("id") or new_id("call_"),
        call.get("name") or "",
        arguments if isinstance(arguments, dict) else {},
    )


def read_text(payload: Any) -> str:
    return "".join(
        part["text"]
        for part in candidate_parts(payload)
        if isinstance(part.get("text"), str) and not is_thought(part)
    )


def parse_chat_answer(payload: JsonObject, model: str) -> ChatAnswer:
    parts: list[Text | ToolCall | Reasoning] = []
    for part in candidate_parts(payload):
        call = function_call(part)
        if call is not None:
            parts.append(call)
        elif isinstance(part.get("text"), str) and part["text"]:
            parts.append(Reasoning(part["text"]) if is_thought(part) else Text(part["text"]))
    called = any(isinstance(part, ToolCall) for part in parts)
    return ChatAnswer(
        id=payload.get("responseId") or new_id("chatcmpl-"),
        model=read_model(payload) or model,
        parts=tuple(parts),
        stop=stop_reason(finish_of(payload), called, blocked(payload)),
        usage=read_usage(payload),
        created=int(time.time()),
    )


def parse_embeddings_answer(payload: JsonObject, model: str) -> EmbeddingAnswer:
    vectors = [
        item.get("values") for item in payload.get("embeddings") or () if isinstance(item, dict)
    ]
    return EmbeddingAnswer(
        vectors=tuple(tuple(vector) for vector in vectors if isinstance(vector, list)),
        model=model,
        usage=read_usage(payload),
    )
