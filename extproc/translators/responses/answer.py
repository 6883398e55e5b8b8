"""Responses objects (`"object": "response"`) ⇄ the neutral form, and reading their usage,
model and text."""

from __future__ import annotations

import time
from typing import Any

from extproc.translators.common import arguments_text, as_object, new_id, token_count
from extproc.translators.ir import (
    NAMESPACE_SEPARATOR,
    ChatAnswer,
    ChatRequest,
    JsonObject,
    StopReason,
    Text,
    ToolCall,
)
from extproc.translators.openai.answer import answer_arguments
from extproc.usage import Usage

INCOMPLETE_REASONS: dict[str, StopReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}


def read_usage(payload: Any) -> Usage | None:
    """The usage of a response object (or of the event that carries one)."""
    payload = as_object(payload)
    usage = as_object(as_object(payload.get("response")).get("usage") or payload.get("usage"))
    if "input_tokens" not in usage:
        return None
    return Usage(
        token_count(usage, "input_tokens"),
        token_count(usage, "output_tokens"),
        cached_input_tokens=token_count(usage.get("input_tokens_details"), "cached_tokens"),
        cache_write_tokens=token_count(usage.get("input_tokens_details"), "cache_write_tokens"),
        reasoning_tokens=token_count(usage.get("output_tokens_details"), "reasoning_tokens"),
    )


def usage_object(usage: Usage) -> JsonObject:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def read_model(payload: Any) -> str | None:
    model = as_object(payload).get("model")
    return model if isinstance(model, str) else None


def read_text(payload: Any) -> str:
    return "".join(
        part["text"]
        for item in _items(payload, "message")
        for part in item.get("content") or ()
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


def parse_chat_answer(payload: JsonObject, model: str) -> ChatAnswer:
    parts: list[Text | ToolCall] = []
    for item in _items(payload):
        if item.get("type") == "message":
            parts.append(Text(read_text({"output": [item]})))
        elif item.get("type") == "function_call":
            call_id = item.get("call_id") or new_id("call_")
            arguments = answer_arguments(item.get("arguments"))
            parts.append(ToolCall(call_id, item.get("name") or "", arguments))
    details = as_object(payload.get("incomplete_details"))
    stop: StopReason = "tool_calls" if any(isinstance(p, ToolCall) for p in parts) else "stop"
    if payload.get("status") == "incomplete":
        stop = INCOMPLETE_REASONS.get(details.get("reason") or "", "other")
    return ChatAnswer(
        id=payload.get("id") or new_id("resp_"),
        model=read_model(payload) or model,
        parts=tuple(part for part in parts if not isinstance(part, Text) or part.text),
        stop=stop,
        usage=read_usage(payload),
        created=payload.get("created_at") or int(time.time()),
    )


def _items(payload: Any, kind: str | None = None) -> list[JsonObject]:
    output = as_object(payload).get("output")
    items = output if isinstance(output, list) else []
    return [
        item
        for item in items
        if isinstance(item, dict) and (kind is None or item.get("type") == kind)
    ]


def build_chat_answer(answer: ChatAnswer, request: ChatRequest) -> JsonObject:
    text = "".join(part.text for part in answer.parts if isinstance(part, Text))
    output: list[JsonObject] = [message_item(new_id("msg_"), text)] if text else []
    output += [
        function_call_item(new_id("fc_"), part, arguments_text(part.arguments), request)
        for part in answer.parts
        if isinstance(part, ToolCall)
    ]
    return response_object(
        answer.id, answer.model, answer.created, output, answer.stop, answer.usage
    )


def message_item(item_id: str, text: str, status: str = "completed") -> JsonObject:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content if status == "completed" else [],
    }


def function_call_item(
    item_id: str,
    call: ToolCall | tuple[str, str],
    arguments: str,
    request: ChatRequest,
    status: str = "completed",
) -> JsonObject:
    """`call`: the call, or its (id, name) while its arguments are still arriving. A call of
    a tool the request grouped in a namespace names it as the request did."""
    call_id, name = (call.id, call.name) if isinstance(call, ToolCall) else call
    item = {"type": "function_call", "id": item_id, "call_id": call_id}
    namespace = next(
        (tool.namespace for tool in request.tools if tool.name == name and tool.namespace),
        None,
    )
    if namespace is not None:
        item["namespace"] = namespace
        name = name.removeprefix(namespace + NAMESPACE_SEPARATOR)
    return item | {"name": name, "arguments": arguments, "status": status}


def response_object(  # noqa: PLR0917 - the fields of one object
    response_id: str,
    model: str,
    created: int,
    output: list[JsonObject],
    stop: StopReason | None,
    usage: Usage | None,
) -> JsonObject:
    """A response object; `stop` None while it is still in progress. The gateway keeps no
    responses: `store` is false and later requests cannot point back at it."""
    incomplete = stop in ("length", "content_filter")
    status = "in_progress" if stop is None else "incomplete" if incomplete else "completed"
    reason = "max_output_tokens" if stop == "length" else stop
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": reason} if incomplete else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": None if usage is None else usage_object(usage),
        "user": None,
        "metadata": {},
    }
