"""The mock as Amazon Bedrock's runtime: Converse and ConverseStream, the binary event stream
frames, Bedrock's error shape, and the SigV4 signature checked as AWS checks it (recomputed
from the test credentials the mock knows)."""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mockprovider.script import Call, MockError, Prompt, Reply, estimate_tokens, pieces

STOP = {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence"} | {
    "tool_calls": "tool_use"
}
FIELDS = frozenset(
    {
        "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
        "additionalModelRequestFields", "promptVariables", "additionalModelResponseFieldPaths",
        "requestMetadata", "performanceConfig",
    }
)  # fmt: skip
ERROR_NAMES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
}


def error(status: int, message: str) -> bytes:
    return orjson.dumps({"message": message})


def error_name(status: int) -> str:
    """The `x-amzn-ErrorType` of an error status."""
    return ERROR_NAMES.get(status, "InternalServerException")


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event stream message: prelude (lengths, CRC), string headers, payload, CRC."""
    encoded = b"".join(
        struct.pack("!B", len(name)) + name.encode() + b"\x07" + struct.pack("!H", len(value))
        + value.encode()
        for name, value in headers.items()
    )  # fmt: skip
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + encoded + payload
    return body + struct.pack("!I", zlib.crc32(body))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, orjson.dumps(payload))


def corrupted(message: bytes) -> bytes:
    """The frame with one payload bit flipped: its message CRC no longer matches."""
    flipped = bytearray(message)
    flipped[-5] ^= 0x01
    return bytes(flipped)


def check(body: dict[str, Any], model: str) -> Prompt:
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise MockError(
            f"1 validation error detected: Value at '{unknown[0]}' failed to satisfy constraint"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MockError(
            "1 validation error detected: Value at 'messages' failed to satisfy constraint"
        )
    if messages[0].get("role") != "user":
        raise MockError(
            "A conversation must start with a user message. Try again with a conversation "
            "that starts with a user message."
        )
    uses_tools = any(
        "toolUse" in block or "toolResult" in block
        for message in messages
        for block in message.get("content") or ()
    )
    tools = (body.get("toolConfig") or {}).get("tools") or []
    if uses_tools and not tools:
        raise MockError(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    config = body.get("inferenceConfig") or {}
    thinking = _check_thinking(body, config, messages, model)
    last = messages[-1].get("content") or []
    results = [
        "".join(part.get("text", "") for part in block["toolResult"].get("content") or ())
        for block in last
        if "toolResult" in block
    ]
    return Prompt(
        input_tokens=estimate_tokens(messages) + estimate_tokens(body.get("system") or []),
        tools=[tool["toolSpec"]["name"] for tool in tools],
        tool_results=results,
        max_tokens=config.get("maxTokens"),
        stop=config.get("stopSequences") or [],
        thinking=thinking,
    )


def _check_thinking(
    body: dict[str, Any], config: dict[str, Any], messages: list[Any], model: str
) -> bool:
    """Claude's rules for thinking on Bedrock: only Claude models take it, with a budget of at
    least 1,024 tokens below the output cap, and a tool-using last assistant turn starts with
    its signed thinking."""
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    if thinking is not None and "anthropic.claude" not in model:
        raise MockError(f"The model {model} does not support the field thinking.")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return False
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        raise MockError("thinking.budget_tokens: Input should be greater than or equal to 1024")
    if budget >= (config.get("maxTokens") or 0):
        raise MockError("`max_tokens` must be greater than `thinking.budget_tokens`.")
    turns = [m for m in messages if m.get("role") == "assistant"]
    content = (turns[-1].get("content") or []) if turns else []
    if any("toolUse" in block for block in content):
        first = content[0].get("reasoningContent") if content else None
        signature = ((first or {}).get("reasoningText") or {}).get("signature")
        if first is None:
            raise MockError(
                "Expected `thinking` or `redacted_thinking`, but found `tool_use`. When "
                "`thinking` is enabled, a final `assistant` message must start with a thinking "
                "block."
            )
        if signature != THINKING_SIGNATURE:
            raise MockError("Invalid `signature` in `thinking` block")
    return True


THINKING_SIGNATURE = "RXFNbW9jay10aGlua2luZy1zaWduYXR1cmU="
"""The signature the mock gives its thinking (opaque base64, like Anthropic's)."""


def embed(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """InvokeModel for an embedding model: Cohere's batch of texts, or Titan's one text."""
    if model.startswith("cohere."):
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or "input_type" not in body:
            raise MockError("Malformed input request: texts and input_type are required")
        vectors = [vector(text, EMBEDDING_DIMENSIONS) for text in texts]
        return {
            "embeddings": vectors,
            "id": "mock",
            "response_type": "embeddings_floats",
            "texts": texts,
        }
    if not model.startswith("amazon.titan-embed"):
        raise MockError(f"The provided model identifier is invalid: {model}")
    unknown = sorted(set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"})
    if unknown or not isinstance(body.get("inputText"), str):
        raise MockError(
            "Malformed input request: required key [inputText] not found, extraneous key found"
        )
    dimensions = body.get("dimensions", 1024)
    if dimensions not in (256, 512, 1024):
        raise MockError("Malformed input request: dimensions must be 256, 512 or 1024")
    text = body["inputText"]
    return {"embedding": vector(text, dimensions), "inputTextTokenCount": estimate_tokens(text)}


def vector(text: str, dimensions: int) -> list[float]:
    """A stable vector for a text."""
    seed = hashlib.sha256(text.encode()).digest()
    return [seed[i % len(seed)] / 255 for i in range(dimensions)]


def usage(reply: Reply) -> dict[str, int]:
    uncached = reply.input_tokens - reply.cached_tokens - reply.cache_write_tokens
    return {
        "inputTokens": uncached,
        "outputTokens": reply.output_tokens,
        "totalTokens": reply.input_tokens + reply.output_tokens,
        "cacheReadInputTokens": reply.cached_tokens,
        "cacheWriteInputTokens": reply.cache_write_tokens,
    }


def _tool_use(call: Call) -> dict[str, Any]:
    return {"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.arguments}}


def answer(reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.thought:
        text = {"text": reply.thought, "signature": THINKING_SIGNATURE}
        content.append({"reasoningContent": {"reasoningText": text}})
    content += [{"text": reply.text}] if reply.words else []
    content += [_tool_use(call) for call in reply.calls]
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": STOP[reply.finish],
        "usage": usage(reply),
        "metrics": {"latencyMs": 1},
    }


def events(reply: Reply) -> list[bytes]:
    """ConverseStream's frames: messageStart, content blocks (text deltas, a tool call's start
    then input pieces), messageStop, metadata with the usage."""
    frames = [event("messageStart", {"role": "assistant"})]
    index = 0
    if reply.thought:
        for delta in ({"text": reply.thought}, {"signature": THINKING_SIGNATURE}):
            payload = {"delta": {"reasoningContent": delta}, "contentBlockIndex": 0}
            frames.append(event("contentBlockDelta", payload))
        frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
        index = 1
    if reply.words:
        frames += [
            event("contentBlockDelta", {"delta": {"text": word}, "contentBlockIndex": index})
            for word in reply.words
        ]
        frames.append(event("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    for offset, call in enumerate(reply.calls):
        block = index + offset
        start = {"toolUse": {"toolUseId": call.id, "name": call.name}}
        frames.append(event("contentBlockStart", {"start": start, "contentBlockIndex": block}))
        frames += [
            event(
                "contentBlockDelta",
                {"delta": {"toolUse": {"input": piece}}, "contentBlockIndex": block},
            )
            for piece in pieces(call.arguments_json)
        ]
        frames.append(event("contentBlockStop", {"contentBlockIndex": block}))
    frames.append(event("messageStop", {"stopReason": STOP[reply.finish]}))
    frames.append(event("metadata", {"usage": usage(reply), "metrics": {"latencyMs": 1}}))
    return frames


EVENT_STREAM_TYPE = "application/vnd.amazon.eventstream"
EMBEDDING_DIMENSIONS = 1024
TEST_CREDENTIALS = {"AKIDMOCKGATEWAY": "mock/secret/access/key/for/tests/only"}
"""The access keys the mock knows (id → secret), as AWS knows an account's keys."""
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?"
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)


def check_signature(  # noqa: PLR0917 - a request's parts, and whose keys to check against
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    known: Mapping[str, str] = TEST_CREDENTIALS,
    service: str = "bedrock",
) -> tuple[int, str, str] | None:
    """(status, error name, message) when the SigV4 signature is missing or wrong; the
    signature is recomputed from the request as received, as AWS does, with the `known`
    secret of its access key."""
    match = _AUTHORIZATION.match(headers.get("authorization", ""))
    if match is None:
        return 403, "MissingAuthenticationTokenException", "Missing Authentication Token"
    secret = known.get(match["key"])
    if secret is None or match["service"] != service:
        return (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    signed = match["signed"].split(";")
    request = AWSRequest(
        method=method, url=url, data=body, headers={name: headers.get(name, "") for name in signed}
    )
    request.context["timestamp"] = headers.get("x-amz-date", "")
    token = headers.get("x-amz-security-token")
    signer = SigV4Auth(Credentials(match["key"], secret, token), match["service"], match["region"])
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    if not hmac.compare_digest(expected, match["sig"]):
        return (
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return None
