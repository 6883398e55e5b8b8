"""The mock as OpenAI's Responses API: its checks, response objects, event sequence, stored
responses (`store`, `previous_response_id`, GET and DELETE) and token counts."""

from __future__ import annotations

import time
from typing import Any

import orjson

from mockprovider.script import Call, MockError, Prompt, Reply, estimate_tokens, pieces

FIELDS = frozenset(
    {
        "background", "client_metadata", "conversation", "include", "input", "instructions",
        "max_output_tokens", "max_tool_calls", "metadata", "model", "parallel_tool_calls",
        "previous_response_id", "prompt", "prompt_cache_key", "prompt_cache_retention", "reasoning",
        "safety_identifier", "service_tier", "store", "stream", "stream_options",
        "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation",
        "user",
    }
)  # fmt: skip
COUNT_FIELDS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "previous_response_id",
        "conversation", "parallel_tool_calls", "reasoning", "text", "truncation",
    }
)  # fmt: skip
MIN_OUTPUT_TOKENS = 16
ITEM_TYPES = frozenset({"message", "function_call", "function_call_output", "reasoning"})

Stored = dict[str, dict[str, Any]]
"""Responses kept by id, as OpenAI keeps them when `store` is not false."""


def check(body: dict[str, Any], stored: Stored, fields: frozenset[str] = FIELDS) -> Prompt:
    unknown = sorted(set(body) - fields)
    if unknown:
        raise MockError(f"Unknown parameter: '{unknown[0]}'.")
    if not isinstance(body.get("model"), str):
        raise MockError("Missing required parameter: 'model'.")
    cap = body.get("max_output_tokens")
    if isinstance(cap, int) and cap < MIN_OUTPUT_TOKENS:
        raise MockError(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
            f"{MIN_OUTPUT_TOKENS}, but got {cap} instead."
        )
    earlier = _earlier(body.get("previous_response_id"), stored)
    items = _items(body.get("input"))
    results = _results(earlier + items)
    tools = [_tool_name(tool, index) for index, tool in enumerate(body.get("tools") or ())]
    instructions = body.get("instructions")
    tokens = sum(
        estimate_tokens(part) for part in (earlier, body.get("input"), instructions) if part
    )
    return Prompt(
        input_tokens=tokens,
        tools=tools,
        tool_results=results if items and items[-1].get("type") == "function_call_output" else [],
        max_tokens=cap if isinstance(cap, int) else None,
    )


def count(body: dict[str, Any], stored: Stored) -> dict[str, Any]:
    """`POST /v1/responses/input_tokens`."""
    prompt = check(body, stored, COUNT_FIELDS)
    return {"object": "response.input_tokens", "input_tokens": prompt.input_tokens}


def _earlier(previous: Any, stored: Stored) -> list[dict[str, Any]]:
    """The conversation a stored response continues: its input and its output."""
    if previous is None:
        return []
    response = stored.get(str(previous))
    if response is None:
        raise MockError(f"Previous response with id '{previous}' not found.", status=404)
    return [*response["_input"], *response["output"]]


def _items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise MockError("Invalid type for 'input': expected one of a string or array of objects.")
    for index, item in enumerate(value):
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind not in ITEM_TYPES:
            raise MockError(f"Invalid value: '{kind}'. Supported values are: {sorted(ITEM_TYPES)}")
        if kind == "message" and item.get("role") not in (
            "user",
            "assistant",
            "system",
            "developer",
        ):
            raise MockError(f"Invalid value: '{item.get('role')}' for 'input[{index}].role'.")
        if kind == "function_call":
            orjson.loads(item["arguments"])  # the API parses them
    return [item | {"type": item.get("type", "message")} for item in value]


def _results(items: list[dict[str, Any]]) -> list[str]:
    calls: set[str] = set()
    results: list[str] = []
    for item in items:
        if item["type"] == "function_call":
            calls.add(item.get("call_id", ""))
        elif item["type"] == "function_call_output":
            if item.get("call_id") not in calls:
                raise MockError(
                    f"No tool call found for function call output with call_id "
                    f"{item.get('call_id')}."
                )
            output = item.get("output")
            results.append(output if isinstance(output, str) else orjson.dumps(output).decode())
    return results


def _tool_name(tool: Any, index: int) -> str:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return str(tool.get("type") if isinstance(tool, dict) else "")  # a built-in tool
    if not isinstance(tool.get("name"), str):
        raise MockError(f"Missing required parameter: 'tools[{index}].name'.")
    return str(tool["name"])


def usage(reply: Reply) -> dict[str, Any]:
    return {
        "input_tokens": reply.input_tokens,
        "input_tokens_details": {
            "cached_tokens": reply.cached_tokens,
            "cache_write_tokens": reply.cache_write_tokens,
        },
        "output_tokens": reply.output_tokens,
        "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def _message(reply: Reply, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
    return {
        "type": "message",
        "id": f"msg_{reply.id}",
        "status": status,
        "role": "assistant",
        "content": [part] if status == "completed" else [],
    }


def _call(call: Call, arguments: str | None = None) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call.id}",
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments_json if arguments is None else arguments,
        "status": "completed" if arguments is None else "in_progress",
    }


def _response(body: dict[str, Any], reply: Reply, status: str) -> dict[str, Any]:
    output = [_call(call) for call in reply.calls] if reply.calls else [_message(reply)]
    done = status != "in_progress"
    incomplete = done and reply.finish == "length"
    return {
        "id": f"resp_{reply.id}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output if done else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text", {"format": {"type": "text"}}),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage(reply) if done else None,
        "user": body.get("user"),
        "metadata": body.get("metadata", {}),
    }


def answer(body: dict[str, Any], reply: Reply, stored: Stored) -> dict[str, Any]:
    response = _response(body, reply, "completed")
    _keep(body, response, stored)
    return response


def _keep(body: dict[str, Any], response: dict[str, Any], stored: Stored) -> None:
    if body.get("store", True):
        earlier = _earlier(body.get("previous_response_id"), stored)
        stored[response["id"]] = response | {"_input": earlier + _items(body["input"])}


def public(response: dict[str, Any]) -> dict[str, Any]:
    """A stored response as GET returns it."""
    return {name: value for name, value in response.items() if not name.startswith("_")}


def input_items(response: dict[str, Any]) -> dict[str, Any]:
    """`GET /v1/responses/{id}/input_items`: the input the response was made from, newest
    first (OpenAI's default order)."""
    items = [
        item | {"id": item.get("id") or f"msg_{index}"} | _parts(item.get("content"))
        for index, item in enumerate(reversed(response["_input"]))
    ]
    first, last = (items[0]["id"], items[-1]["id"]) if items else (None, None)
    return {"object": "list", "data": items, "first_id": first, "last_id": last, "has_more": False}


def _parts(content: Any) -> dict[str, Any]:
    """Message text as the API lists it back: an `input_text` part."""
    return (
        {"content": [{"type": "input_text", "text": content}]} if isinstance(content, str) else {}
    )


def events(body: dict[str, Any], reply: Reply, stored: Stored) -> list[bytes]:
    """The Responses event sequence: created, in_progress, each item opened, filled and
    closed, then completed (or incomplete) with the usage; events numbered from 0."""
    payloads: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        payloads.append({"type": kind, "sequence_number": len(payloads), **fields})

    emit("response.created", response=_response(body, reply, "in_progress"))
    emit("response.in_progress", response=_response(body, reply, "in_progress"))
    if reply.calls:
        for index, call in enumerate(reply.calls):
            emit("response.output_item.added", output_index=index, item=_call(call, ""))
            where = {"item_id": f"fc_{call.id}", "output_index": index}
            for piece in pieces(call.arguments_json):
                emit("response.function_call_arguments.delta", **where, delta=piece)
            emit("response.function_call_arguments.done", **where, arguments=call.arguments_json)
            emit("response.output_item.done", output_index=index, item=_call(call))
    else:
        where = {"item_id": f"msg_{reply.id}", "output_index": 0}
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        emit("response.output_item.added", output_index=0, item=_message(reply, "in_progress"))
        emit("response.content_part.added", **where, content_index=0, part=empty)
        for word in reply.words:
            emit("response.output_text.delta", **where, content_index=0, delta=word, logprobs=[])
        emit("response.output_text.done", **where, content_index=0, text=reply.text, logprobs=[])
        part = empty | {"text": reply.text}
        emit("response.content_part.done", **where, content_index=0, part=part)
        emit("response.output_item.done", output_index=0, item=_message(reply))
    final = _response(body, reply, "completed")
    _keep(body, final, stored)
    emit(f"response.{final['status']}", response=final)
    return [
        b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
        for payload in payloads
    ]
