"""The mock as Google's Gemini API: generateContent, streamGenerateContent (`alt=sse`, CRLF
event ends), batchEmbedContents; its checks (unknown fields, roles, one data field a part,
function responses matching the calls, thought signatures on replayed calls) and Google's
error shape."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from mockprovider.openai import EMBEDDING_DIMENSIONS, vector
from mockprovider.script import MockError, Prompt, Reply, estimate_tokens

REQUEST_FIELDS = frozenset(
    {
        "contents", "tools", "toolConfig", "safetySettings", "systemInstruction",
        "generationConfig", "cachedContent",
    }
)  # fmt: skip
GENERATION_FIELDS = frozenset(
    {
        "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
        "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP",
        "topK", "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs",
        "thinkingConfig", "mediaResolution",
    }
)  # fmt: skip
DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
THINKING_FIELDS = frozenset({"thinkingBudget", "includeThoughts", "thinkingLevel"})
THINKING_MODELS = re.compile(r"gemini-(2\.5|[3-9])")
"""Gemini's models that think (older ones refuse a thinking budget)."""
PART_FIELDS = frozenset({*DATA_FIELDS, "thought", "thoughtSignature"})
FINISH = {"stop": "STOP", "stop_sequence": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS"}
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
SIGNATURE = "bW9jay10aG91Z2h0LXNpZ25hdHVyZQ=="
"""The thought signature the mock gives its function calls (base64 bytes, like Gemini's)."""


def error(status: int, message: str, details: list[Any] | None = None) -> bytes:
    body: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        body["details"] = details
    return orjson.dumps({"error": body})


def check_key(headers: Mapping[str, str], query_key: str, keys: frozenset[str]) -> bytes | None:
    """Google's answers: 403 without a key, 400 API_KEY_INVALID for a wrong one."""
    key = headers.get("x-goog-api-key") or query_key
    if not key:
        return error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity)."
            " Please use API Key or other form of API consumer identity to call this API.",
        )
    if keys and key not in keys:
        detail = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
        return error(400, "API key not valid. Please pass a valid API key.", [detail])
    return None


def _unknown(fields: Any, known: frozenset[str], where: str) -> None:
    extra = sorted(set(fields) - known) if isinstance(fields, dict) else []
    if extra:
        raise MockError(
            f"Invalid JSON payload received. Unknown name \"{extra[0]}\" at '{where}': "
            "Cannot find field."
        )


def check_generate(body: dict[str, Any], model: str) -> Prompt:
    _unknown(body, REQUEST_FIELDS, "")
    config = body.get("generationConfig") or {}
    _unknown(config, GENERATION_FIELDS, "generation_config")
    thinking = config.get("thinkingConfig") or {}
    _unknown(thinking, THINKING_FIELDS, "generation_config.thinking_config")
    if thinking.get("thinkingBudget") and not THINKING_MODELS.match(model):
        raise MockError("Thinking is not supported for this model.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise MockError("* GenerateContentRequest.contents: contents is not specified")
    tools = [
        declaration["name"]
        for tool in body.get("tools") or ()
        for declaration in tool.get("functionDeclarations") or ()
    ]
    calls: list[str] = []
    results: list[str] = []
    for index, content in enumerate(contents):
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise MockError(f"Please use a valid role: user, model. (contents[{index}].role)")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise MockError(
                f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not "
                "be empty."
            )
        for position, part in enumerate(parts):
            _check_part(part, f"contents[{index}].parts[{position}]")
        if role == "model":
            calls = _model_calls(parts, index)
            results = []
            continue
        responses = [part["functionResponse"] for part in parts if "functionResponse" in part]
        if responses and len(responses) != len(calls):
            raise MockError(
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
        for response in responses:
            if response.get("name") not in calls:
                raise MockError(f"function response for {response.get('name')!r} has no call")
        results = [_response_text(response) for response in responses]
        calls = []
    system = body.get("systemInstruction")
    cap = config.get("maxOutputTokens")
    return Prompt(
        input_tokens=estimate_tokens(contents) + (estimate_tokens(system) if system else 0),
        tools=tools,
        tool_results=results,
        max_tokens=cap if isinstance(cap, int) else None,
        stop=config.get("stopSequences") or [],
        thinking=thinking.get("includeThoughts") is True and thinking.get("thinkingBudget") != 0,
    )


def _check_part(part: Any, where: str) -> None:
    _unknown(part, PART_FIELDS, where)
    data = [name for name in DATA_FIELDS if name in part]
    if len(data) != 1:
        raise MockError(f"{where}: a part must have exactly one of {', '.join(DATA_FIELDS)}.")
    if data[0] == "text" and not isinstance(part["text"], str):
        raise MockError(f"{where}.text: Invalid value (a string is expected)")
    if data[0] == "functionResponse" and not isinstance(
        part["functionResponse"].get("response"), dict
    ):
        raise MockError(
            f"{where}.function_response.response: Invalid value (an object is expected)"
        )


def _model_calls(parts: list[dict[str, Any]], index: int) -> list[str]:
    calls = [part for part in parts if "functionCall" in part]
    if calls and "thoughtSignature" not in calls[0]:
        raise MockError(
            f"Function call is missing a thought_signature in functionCall parts. This is "
            f"required for tools to work correctly (contents[{index}])."
        )
    return [part["functionCall"]["name"] for part in calls]


def _response_text(response: dict[str, Any]) -> str:
    value = response.get("response") or {}
    text = value.get("output", value.get("error", value))
    return text if isinstance(text, str) else orjson.dumps(text).decode()


def usage(reply: Reply, candidates: int | None = None) -> dict[str, Any]:
    answer = reply.answer_tokens if candidates is None else candidates
    metadata = {
        "promptTokenCount": reply.input_tokens,
        "candidatesTokenCount": answer,
        "totalTokenCount": reply.input_tokens + answer + reply.reasoning_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.input_tokens}],
    }
    if reply.cached_tokens:
        metadata["cachedContentTokenCount"] = reply.cached_tokens
    if reply.reasoning_tokens:
        metadata["thoughtsTokenCount"] = reply.reasoning_tokens
    return metadata


def _calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {"functionCall": {"name": call.name, "args": call.arguments}}
        | ({"thoughtSignature": SIGNATURE} if index == 0 else {})
        for index, call in enumerate(reply.calls)
    ]


def _thought(reply: Reply) -> list[dict[str, Any]]:
    return [{"text": reply.thought, "thought": True}] if reply.thought else []


def answer(model: str, reply: Reply) -> dict[str, Any]:
    parts = _thought(reply) + ([{"text": reply.text}] if reply.text else []) + _calls(reply)
    return {
        "candidates": [
            {
                "content": {"parts": parts, "role": "model"},
                "finishReason": FINISH[reply.finish],
                "index": 0,
            }
        ],
        "usageMetadata": usage(reply),
        "modelVersion": model,
        "responseId": reply.id,
    }


def events(model: str, reply: Reply) -> list[bytes]:
    """A chunk per word (usage so far in each), function calls whole, and the finish reason
    with the final usage in the last chunk; events end in CRLF CRLF as Google sends them."""
    words: list[dict[str, Any]] = [{"text": word} for word in reply.words]
    chunks = _thought(reply) + words + _calls(reply)
    payloads = []
    for index, part in enumerate(chunks or [{"text": ""}]):
        last = index == max(len(chunks), 1) - 1
        candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
        if last:
            candidate["finishReason"] = FINISH[reply.finish]
        payloads.append(
            {
                "candidates": [candidate],
                "usageMetadata": usage(reply) if last else usage(reply, candidates=index + 1),
                "modelVersion": model,
                "responseId": reply.id,
            }
        )
    return [b"data: " + orjson.dumps(payload) + b"\r\n\r\n" for payload in payloads]


def check_embed(body: dict[str, Any], model: str) -> list[dict[str, Any]]:
    _unknown(body, frozenset({"requests"}), "")
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise MockError("* BatchEmbedContentsRequest.requests: requests is required")
    for index, request in enumerate(requests):
        if request.get("model") != f"models/{model}":
            raise MockError(
                f"* BatchEmbedContentsRequest.requests[{index}].model: the model must be the "
                f"one in the URL (models/{model})."
            )
    return requests


def embeddings(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """Vectors only: Gemini's batchEmbedContents reports no usage."""
    return {
        "embeddings": [
            {
                "values": vector(
                    request["content"]["parts"][0]["text"],
                    request.get("outputDimensionality") or EMBEDDING_DIMENSIONS,
                )
            }
            for request in requests
        ]
    }
