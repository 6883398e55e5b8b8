"""OpenAI JSON answers (chat completions, embeddings) ⇄ the neutral form, and reading their
usage, model and text."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import orjson

from extproc.errors import BadGateway
from extproc.translators.common import arguments_text, new_id, token_count
from extproc.translators.ir import (
    ChatAnswer,
    ChatRequest,
    EmbeddingAnswer,
    EmbeddingRequest,
    JsonObject,
    Reasoning,
    StopReason,
    Text,
    ToolCall,
)
from extproc.usage import Usage

FINISH_REASONS: dict[str, StopReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
OPENAI_FINISH: dict[StopReason, str] = {
    "stop": "stop",
    "stop_sequence": "stop",
    "other": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def read_usage(payload: Any) -> Usage | None:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict) or "prompt_tokens" not in usage:
        return None
    prompt = usage.get("prompt_tokens_details")
    completion = usage.get("completion_tokens_details")
    return Usage(
        token_count(usage, "prompt_tokens"),
        token_count(usage, "completion_tokens"),
        cached_input_tokens=token_count(prompt, "cached_tokens"),
        reasoning_tokens=token_count(completion, "reasoning_tokens"),
    )


def usage_object(usage: Usage) -> JsonObject:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def read_model(payload: Any) -> str | None:
    model = payload.get("model") if isinstance(payload, dict) else None
    return model if isinstance(model, str) else None


def read_text(payload: Any) -> str:
    parts: list[str] = []
    for choice in (payload.get("choices") if isinstance(payload, dict) else None) or ():
        if isinstance(choice, dict):
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else choice.get("text")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


def parse_chat_answer(payload: JsonObject, model: str) -> ChatAnswer:
    choices = payload.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    parts: list[Text | ToolCall | Reasoning] = []
    for name in ("reasoning_content", "reasoning"):
        # OpenAI-compatible servers of reasoning models (vLLM, DeepSeek) show their thinking.
        if isinstance(message.get(name), str) and message[name]:
            parts.append(Reasoning(message[name]))
            break
    for name in ("content", "refusal"):
        if isinstance(message.get(name), str) and message[name]:
            parts.append(Text(message[name]))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(
            ToolCall(
                id=call.get("id") or new_id("call_"),
                name=function.get("name") or "",
                arguments=answer_arguments(function.get("arguments")),
            )
        )
    return ChatAnswer(
        id=payload.get("id") or new_id("chatcmpl-"),
        model=read_model(payload) or model,
        parts=tuple(parts),
        stop=FINISH_REASONS.get(choice.get("finish_reason") or "stop", "other"),
        usage=read_usage(payload),
        created=payload.get("created") or int(time.time()),
    )


def answer_arguments(text: Any) -> JsonObject:
    """Arguments a model produced; a client of another schema needs them as an object."""
    try:
        arguments = orjson.loads(text) if isinstance(text, str) and text.strip() else {}
    except orjson.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise BadGateway(
            "The provider answered a tool call whose arguments are not a JSON object.",
            code="untranslatable_answer",
        )
    return arguments


def build_chat_answer(answer: ChatAnswer, request: ChatRequest) -> JsonObject:
    text = "".join(part.text for part in answer.parts if isinstance(part, Text))
    message: JsonObject = {"role": "assistant", "content": text or None, "refusal": None}
    calls = [part for part in answer.parts if isinstance(part, ToolCall)]
    if calls:
        message["tool_calls"] = [tool_call(call) for call in calls]
    return {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": OPENAI_FINISH[answer.stop],
            }
        ],
        "usage": usage_object(answer.usage or Usage(0, 0)),
    }


def tool_call(call: ToolCall) -> JsonObject:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments_text(call.arguments)},
    }


def parse_embeddings_answer(payload: JsonObject, model: str) -> EmbeddingAnswer:
    vectors = [item.get("embedding") for item in payload.get("data") or ()]
    return EmbeddingAnswer(
        vectors=tuple(tuple(vector) for vector in vectors if isinstance(vector, list)),
        model=read_model(payload) or model,
        usage=read_usage(payload),
    )


def build_embeddings_answer(answer: EmbeddingAnswer, request: EmbeddingRequest) -> JsonObject:
    usage = answer.usage or Usage(0, 0)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": _vector(vector, request)}
            for index, vector in enumerate(answer.vectors)
        ],
        "model": answer.model,
        "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens},
    }


def _vector(values: tuple[float, ...], request: EmbeddingRequest) -> list[float] | str:
    if not request.base64:
        return list(values)
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
