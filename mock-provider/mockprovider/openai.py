"""The mock as OpenAI (and Azure OpenAI): Chat Completions, Completions and Embeddings, JSON
and streamed, with OpenAI's checks and error shapes."""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Mapping
from typing import Any

import orjson

from mockprovider.script import (
    Call,
    MockError,
    Prompt,
    Reply,
    estimate_tokens,
    pieces,
)

EMBEDDING_DIMENSIONS = 8
CHAT_FIELDS = frozenset(
    {
        "messages", "model", "audio", "frequency_penalty", "function_call", "functions",
        "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata",
        "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty",
        "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "response_format",
        "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
        "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p",
        "user", "verbosity", "web_search_options",
    }
)  # fmt: skip
ROLES = ("system", "developer", "user", "assistant", "tool")
REASONING_MODELS = ("o1", "o3", "o4", "gpt-5", "gpt-oss", "codex")
"""OpenAI's models that take `reasoning_effort` (others refuse it)."""
FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool_calls": "tool_calls"}


_ERRORS = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error(message: str, kind: str = "invalid_request_error", code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def status_error(status: int, message: str) -> bytes:
    """OpenAI's error for a status, typed as OpenAI types it."""
    default = ("invalid_request_error", None) if status < 500 else ("server_error", None)
    kind, code = _ERRORS.get(status, default)
    return error(message, kind, code)


def azure_error(status: int, message: str) -> bytes:
    """Azure OpenAI's own error shape: a code and a message, no type."""
    return orjson.dumps({"error": {"code": str(status), "message": message}})


def check_key(headers: Mapping[str, str], keys: frozenset[str], *, azure: bool) -> str | None:
    """The 401 message when the request's key is missing or wrong."""
    if azure:
        key = headers.get("api-key", "")
        if not key or (keys and key not in keys):
            return (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                "to provide a valid key for an active subscription and use a correct regional "
                "API endpoint for your resource."
            )
        return None
    scheme, _, key = headers.get("authorization", "").partition(" ")
    if scheme != "Bearer" or not key:
        return "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."  # noqa: E501
    if keys and key not in keys:
        return f"Incorrect API key provided: {key[:3]}***{key[-4:]}."
    return None


def check_chat(body: dict[str, Any]) -> Prompt:
    unknown = sorted(set(body) - CHAT_FIELDS)
    if unknown:
        raise MockError(f"Unrecognized request argument supplied: {unknown[0]}")
    model = body.get("model")
    if body.get("reasoning_effort") is not None and not (
        isinstance(model, str) and model.startswith(REASONING_MODELS)
    ):
        raise MockError(
            "Unsupported parameter: 'reasoning_effort' is not supported with this model."
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MockError("[] is too short - 'messages'")
    if "max_tokens" in body and "max_completion_tokens" in body:
        raise MockError(
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported."
        )
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise MockError("The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    if body.get("parallel_tool_calls") is not None and not body.get("tools"):
        raise MockError("'parallel_tool_calls' is only allowed when 'tools' are specified.")
    tools = [_tool_name(tool) for tool in body.get("tools") or ()]
    results = _tool_results(messages)
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    stop = body.get("stop")
    return Prompt(
        input_tokens=estimate_tokens(messages),
        tools=tools,
        tool_results=results,
        max_tokens=cap if isinstance(cap, int) else None,
        stop=[stop] if isinstance(stop, str) else stop or [],
    )


def _tool_results(messages: list[Any]) -> list[str]:
    """OpenAI's pairing rules for tool calls and tool messages; the results the last turn
    gives."""
    pending: set[str] = set()
    results: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise MockError(f"Invalid value: '{role}'. Supported values are: {ROLES}.")
        if role != "tool" and pending:
            raise MockError(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(pending))}"
            )
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                raise MockError(
                    f"Invalid parameter: messages with role 'tool' must be a response to a "
                    f"preceeding message with 'tool_calls' (messages.[{index}])."
                )
            pending.discard(call_id)
            results.append(_text(message.get("content")))
        elif role == "assistant":
            for call in message.get("tool_calls") or ():
                orjson.loads(call["function"]["arguments"])  # the API parses them
                pending.add(call["id"])
        else:
            results = []
    return results if messages[-1].get("role") == "tool" else []


def _tool_name(tool: Any) -> str:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise MockError("Missing required parameter: 'tools[0].function.name'.")
    return str(function["name"])


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def check_completion(body: dict[str, Any]) -> Prompt:
    if "prompt" not in body:
        raise MockError("Missing required parameter: 'prompt'.")
    cap = body.get("max_tokens", 16)
    return Prompt(input_tokens=estimate_tokens(body["prompt"]), max_tokens=cap)


def usage(reply: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reply.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _base(body: dict[str, Any], reply: Reply, kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{reply.id}" if kind.startswith("chat") else f"cmpl-{reply.id}",
        "object": kind,
        "created": int(time.time()),
        "model": body.get("model", "mock"),
        "system_fingerprint": "fp_mock",
    }


def _tool_call(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }


def chat_answer(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text or None,
        "refusal": None,
        "annotations": [],
    }
    if reply.calls:
        message["tool_calls"] = [_tool_call(call) for call in reply.calls]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": FINISH[reply.finish],
    }
    return _base(body, reply, "chat.completion") | {
        "choices": [choice],
        "usage": usage(reply),
        "service_tier": "default",
    }


def completion_answer(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    choice = {
        "index": 0,
        "text": reply.text,
        "logprobs": None,
        "finish_reason": FINISH[reply.finish],
    }
    return _base(body, reply, "text_completion") | {"choices": [choice], "usage": usage(reply)}


def chat_events(body: dict[str, Any], reply: Reply) -> list[bytes]:
    """OpenAI's stream: a role chunk, a chunk per word or argument piece, a finish chunk;
    with include_usage every chunk carries `usage: null` and a last chunk with no choices
    carries the usage."""
    base = _base(body, reply, "chat.completion.chunk")
    with_usage = (body.get("stream_options") or {}).get("include_usage") is True
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
    deltas += [{"content": word} for word in reply.words]
    for index, call in enumerate(reply.calls):
        first = {"index": index, "id": call.id, "type": "function"}
        deltas.append({"tool_calls": [first | {"function": {"name": call.name, "arguments": ""}}]})
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in pieces(call.arguments_json)
        ]
    chunks: list[dict[str, Any]] = [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None} for delta in deltas
    ]
    chunks.append(
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": FINISH[reply.finish]}
    )
    payloads = [
        base | {"choices": [chunk]} | ({"usage": None} if with_usage else {}) for chunk in chunks
    ]
    if with_usage:
        payloads.append(base | {"choices": [], "usage": usage(reply)})
    return [b"data: " + orjson.dumps(payload) + b"\n\n" for payload in payloads] + [
        b"data: [DONE]\n\n"
    ]


def completion_events(body: dict[str, Any], reply: Reply) -> list[bytes]:
    base = _base(body, reply, "text_completion")
    with_usage = (body.get("stream_options") or {}).get("include_usage") is True
    payloads = []
    for index, word in enumerate(reply.words):
        last = index == len(reply.words) - 1
        choice = {"index": 0, "text": word, "logprobs": None}
        choice["finish_reason"] = FINISH[reply.finish] if last else None
        payloads.append(base | {"choices": [choice]} | ({"usage": None} if with_usage else {}))
    if with_usage:
        payloads.append(base | {"choices": [], "usage": usage(reply)})
    return [b"data: " + orjson.dumps(payload) + b"\n\n" for payload in payloads] + [
        b"data: [DONE]\n\n"
    ]


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    if inputs is None:
        raise MockError("Missing required parameter: 'input'.")
    items = inputs if isinstance(inputs, list) else [inputs]
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
    tokens = estimate_tokens(inputs)
    encode = _base64 if body.get("encoding_format") == "base64" else list
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode(vector(item, dimensions))}
            for index, item in enumerate(items)
        ],
        "model": body.get("model", "mock"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _base64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def vector(item: Any, dimensions: int) -> list[float]:
    """A stable vector for an input (every provider of the mock gives the same one)."""
    seed = hashlib.sha256(orjson.dumps(item)).digest()
    return [seed[i % len(seed)] / 255 for i in range(dimensions)]
