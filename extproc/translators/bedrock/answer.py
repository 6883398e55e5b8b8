"""Bedrock Converse answers → the neutral form, and reading their usage and text.

Bedrock counts cached input apart: `inputTokens` excludes `cacheReadInputTokens` and
`cacheWriteInputTokens`; the neutral usage's input includes both. Answers do not name the
model (the path did).
"""

from __future__ import annotations

from typing import Any

from extproc.translators.bedrock.request import KIND
from extproc.translators.common import as_object, new_id, token_count
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

STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def read_usage(payload: Any) -> Usage | None:
    """Usage from an answer, a stream's `metadata` event, or a Titan embedding (Cohere's
    embeddings report none: the gateway's estimate stands)."""
    titan = as_object(payload).get("inputTextTokenCount")
    if isinstance(titan, int):
        return Usage(titan, 0)
    usage = as_object(payload).get("usage")
    if not isinstance(usage, dict) or "outputTokens" not in usage:
        return None
    cached = token_count(usage, "cacheReadInputTokens")
    written = token_count(usage, "cacheWriteInputTokens")
    return Usage(
        token_count(usage, "inputTokens") + cached + written,
        token_count(usage, "outputTokens"),
        cached_input_tokens=cached,
        cache_write_tokens=written,
    )


def read_model(payload: Any) -> str | None:
    return None


def read_text(payload: Any) -> str:
    return "".join(
        block["text"] for block in _content(payload) if isinstance(block.get("text"), str)
    )


def parse_chat_answer(payload: JsonObject, model: str) -> ChatAnswer:
    parts: list[Text | ToolCall | Reasoning] = []
    for block in _content(payload):
        if isinstance(block.get("text"), str) and block["text"]:
            parts.append(Text(block["text"]))
        thought = as_object(as_object(block.get("reasoningContent")).get("reasoningText"))
        if isinstance(thought.get("text"), str):
            signature = thought.get("signature")
            signed = signature if isinstance(signature, str) else None
            parts.append(Reasoning(thought["text"], signed, KIND if signed else None))
        use = block.get("toolUse")
        if isinstance(use, dict):
            arguments = use.get("input")
            parts.append(
                ToolCall(
                    use.get("toolUseId") or new_id("tooluse_"),
                    use.get("name") or "",
                    arguments if isinstance(arguments, dict) else {},
                )
            )
    return ChatAnswer(
        id=new_id("msg_bdrk_"),
        model=model,
        parts=tuple(parts),
        stop=STOP_REASONS.get(payload.get("stopReason") or "", "other"),
        usage=read_usage(payload),
    )


def parse_embeddings_answer(payload: JsonObject, model: str) -> EmbeddingAnswer:
    """Titan's `embedding`, or Cohere's `embeddings` (a list, or by type: `{float: [...]}`)."""
    vectors: Any = payload.get("embeddings")
    if isinstance(vectors, dict):
        vectors = vectors.get("float")
    if not isinstance(vectors, list):
        vectors = [payload.get("embedding")]
    return EmbeddingAnswer(
        vectors=tuple(tuple(vector) for vector in vectors if isinstance(vector, list)),
        model=model,
        usage=read_usage(payload),
    )


def _content(payload: Any) -> list[JsonObject]:
    message = as_object(as_object(as_object(payload).get("output")).get("message"))
    content = message.get("content")
    return (
        [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
    )
