"""The mock as Anthropic's Messages API: its checks (headers, roles, block order, tool ids),
its answers and event sequence, and its error shape."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from mockprovider.script import Call, MockError, Prompt, Reply, estimate_tokens, pieces

MESSAGE_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
        "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
        "container", "mcp_servers", "context_management", "output_config",
    }
)  # fmt: skip
COUNT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "mcp_servers",
        "context_management",
        "output_config",
    }
)
"""What `POST /v1/messages/count_tokens` accepts: a message's input, no output settings."""
BLOCKS = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking"})
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
STOP = {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence"} | {
    "tool_calls": "tool_use"
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error(status: int, message: str) -> bytes:
    kind = ERROR_TYPES.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock"}
    return orjson.dumps(body)


def check_headers(headers: Mapping[str, str], keys: frozenset[str]) -> tuple[int, str] | None:
    key = headers.get("x-api-key", "")
    if not key:
        return 401, "x-api-key header is required"
    if keys and key not in keys:
        return 401, "invalid x-api-key"
    if "anthropic-version" not in headers:
        return 400, "anthropic-version: header is required"
    return None


def check_message(body: dict[str, Any]) -> Prompt:
    unknown = sorted(set(body) - MESSAGE_FIELDS)
    if unknown:
        raise MockError(f"{unknown[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("max_tokens"), int):
        raise MockError("max_tokens: Field required")
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 1:
        raise MockError("temperature: range: 0..1")
    tools = [_tool(tool, index) for index, tool in enumerate(body.get("tools") or ())]
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MockError("messages: at least one message is required")
    previous_calls: set[str] = set()
    results: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "system" and index > 0:
            continue  # mid-conversation instructions and tool changes (the SDK's beta types)
        if role == "system":
            raise MockError('messages: first message must use the "user" role')
        if role not in ("user", "assistant"):
            raise MockError(
                f'messages: Unexpected role "{role}". The Messages API accepts a top-level '
                f'`system` parameter, not "{role}" as an input message role.'
            )
        blocks = _blocks(message.get("content"), index)
        answered = _check_results(blocks, previous_calls, index) if role == "user" else set()
        if previous_calls - answered:
            raise MockError(
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(previous_calls - answered))}. Each "
                "`tool_use` block must have a corresponding `tool_result` block in the next "
                "message."
            )
        previous_calls = _tool_uses(blocks, index) if role == "assistant" else set()
        results = [_result_text(b) for b in blocks if b.get("type") == "tool_result"]
    stop = body.get("stop_sequences") or []
    system = body.get("system")
    return Prompt(
        input_tokens=estimate_tokens(messages) + (estimate_tokens(system) if system else 0),
        tools=tools,
        tool_results=results,
        max_tokens=body["max_tokens"],
        stop=stop,
    )


def count_tokens(body: dict[str, Any]) -> dict[str, int]:
    """The answer to `POST /v1/messages/count_tokens`: the input a message would have used."""
    unknown = sorted(set(body) - COUNT_FIELDS)
    if unknown:
        raise MockError(f"{unknown[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str):
        raise MockError("model: Field required")
    return {"input_tokens": check_message({**body, "max_tokens": 1}).input_tokens}


def _tool_uses(blocks: list[dict[str, Any]], index: int) -> set[str]:
    ids = {str(block.get("id")) for block in blocks if block.get("type") == "tool_use"}
    for call_id in ids:
        if not TOOL_ID.match(call_id):
            raise MockError(
                f"messages.{index}: tool_use.id: String should match pattern '{TOOL_ID.pattern}'"
            )
    return ids


def _tool(tool: Any, index: int) -> str:
    if not isinstance(tool, dict) or not TOOL_NAME.match(str(tool.get("name"))):
        raise MockError(
            f"tools.{index}.custom.name: String should match pattern '{TOOL_NAME.pattern}'"
        )
    if not isinstance(tool.get("input_schema"), dict):
        raise MockError(f"tools.{index}.custom.input_schema: Field required")
    return str(tool["name"])


def _blocks(content: Any, index: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise MockError(f"messages.{index}.content: Input should be a valid list")
    for position, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCKS:
            raise MockError(
                f"messages.{index}.content.{position}: Input tag '{kind}' found using 'type' "
                "does not match any of the expected tags"
            )
        if kind == "text" and not block.get("text"):
            raise MockError("messages: text content blocks must be non-empty")
    return content


def _check_results(blocks: list[dict[str, Any]], calls: set[str], index: int) -> set[str]:
    answered: set[str] = set()
    seen_other = False
    for block in blocks:
        if block.get("type") != "tool_result":
            seen_other = True
            continue
        if seen_other:
            raise MockError(
                f"messages.{index}: `tool_result` blocks must come first in the content of a "
                "user message, before any other block."
            )
        if block.get("tool_use_id") not in calls:
            raise MockError(
                f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {block.get('tool_use_id')}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message."
            )
        answered.add(block["tool_use_id"])
    return answered


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "".join(item.get("text", "") for item in content if isinstance(item, dict))
    return content if isinstance(content, str) else ""


def usage(reply: Reply, output_tokens: int | None = None) -> dict[str, Any]:
    return {
        "input_tokens": reply.input_tokens - reply.cached_tokens - reply.cache_write_tokens,
        "cache_creation_input_tokens": reply.cache_write_tokens,
        "cache_read_input_tokens": reply.cached_tokens,
        "output_tokens": reply.output_tokens if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def _tool_use(call: Call) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}


def message(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    content += [_tool_use(call) for call in reply.calls]
    return {
        "id": f"msg_{reply.id}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "mock"),
        "content": content,
        "stop_reason": STOP[reply.finish],
        "stop_sequence": reply.stop_sequence,
        "usage": usage(reply),
    }


def events(body: dict[str, Any], reply: Reply) -> list[bytes]:
    """Anthropic's sequence: message_start (input usage), a ping, content blocks (text, then
    tool_use with input_json_delta pieces), message_delta (stop reason, cumulative output)
    and message_stop."""
    start = message(body, reply) | {"content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = usage(reply, output_tokens=1)
    payloads: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    index = 0
    if reply.words:
        payloads.append(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        )
        payloads += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
            for w in reply.words
        ]
        payloads.append({"type": "content_block_stop", "index": 0})
        index = 1
    for position, call in enumerate(reply.calls, start=index):
        block = _tool_use(call) | {"input": {}}
        payloads.append({"type": "content_block_start", "index": position, "content_block": block})
        for piece in ["", *pieces(call.arguments_json)]:
            delta = {"type": "input_json_delta", "partial_json": piece}
            payloads.append({"type": "content_block_delta", "index": position, "delta": delta})
        payloads.append({"type": "content_block_stop", "index": position})
    payloads += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": STOP[reply.finish], "stop_sequence": reply.stop_sequence},
            "usage": {"output_tokens": reply.output_tokens},
        },
        {"type": "message_stop"},
    ]
    return [
        b"event: " + p["type"].encode() + b"\ndata: " + orjson.dumps(p) + b"\n\n" for p in payloads
    ]
