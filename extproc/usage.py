"""Token usage: estimated from a request before it runs, read from the provider's answer after.

Estimates are deliberately rough and on the high side (about four bytes of JSON a token); the
provider's own `usage` always replaces them when it arrives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.sse import Event

BYTES_PER_TOKEN = 4
DONE = "[DONE]"

_INPUT_FIELDS = {
    "chat": ("messages", "tools", "functions"),
    "text_completion": ("prompt",),
    "embeddings": ("input",),
    "messages": ("system", "messages", "tools"),
}
_CAP_FIELDS = {
    "chat": ("max_completion_tokens", "max_tokens"),
    "text_completion": ("max_tokens",),
    "messages": ("max_tokens",),
}
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
"""OpenAI's documented default for /v1/completions."""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int


def estimate_input_tokens(operation: str, body: dict[str, Any]) -> int:
    size = sum(len(orjson.dumps(body[name])) for name in _INPUT_FIELDS[operation] if name in body)
    return math.ceil(size / BYTES_PER_TOKEN)


def input_text(api: str, body: dict[str, Any]) -> str:
    """The request's input as JSON text (for recording, when that is enabled)."""
    fields = {name: body[name] for name in _INPUT_FIELDS[api] if name in body}
    return orjson.dumps(fields).decode()


def requested_output_cap(operation: str, body: dict[str, Any]) -> int | None:
    """The completion size the request asks for (times `n`), 0 for embeddings, None if unset."""
    if operation == "embeddings":
        return 0
    cap = next(
        (body[name] for name in _CAP_FIELDS[operation] if isinstance(body.get(name), int)), None
    )
    if cap is None and operation == "text_completion":
        cap = COMPLETIONS_DEFAULT_MAX_TOKENS
    choices = body.get("n")
    return (
        None if cap is None else cap * (choices if isinstance(choices, int) and choices > 1 else 1)
    )


def with_output_cap(operation: str, body: dict[str, Any], cap: int) -> dict[str, Any]:
    """The body asking for at most `cap` output tokens in all (split across `n` choices)."""
    choices = body.get("n")
    per_choice = cap // choices if isinstance(choices, int) and choices > 1 else cap
    field = next((name for name in _CAP_FIELDS[operation] if name in body), "max_tokens")
    return body | {field: max(1, per_choice)}


def with_stream_usage(api: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """For an OpenAI stream, the body asking for the usage event; True when that was added
    (the client did not ask for it and must not see it)."""
    if api not in ("chat", "text_completion") or body.get("stream") is not True:
        return body, False
    options = body.get("stream_options") or {}
    if options.get("include_usage") is True:
        return body, False
    return body | {"stream_options": options | {"include_usage": True}}, True


def read_usage(body: Any) -> Usage | None:
    """`usage` from a JSON answer or stream chunk, in OpenAI's or Anthropic's spelling."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage:
        return Usage(_count(usage, "prompt_tokens"), _count(usage, "completion_tokens"))
    if "input_tokens" in usage or "output_tokens" in usage:
        return Usage(
            _count(usage, "input_tokens")
            + _count(usage, "cache_creation_input_tokens")
            + _count(usage, "cache_read_input_tokens"),
            _count(usage, "output_tokens"),
        )
    return None


def _count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and value > 0 else 0


class StreamUsage:
    """Follows a streamed answer: the provider's usage when it reports it, and otherwise an
    estimate of the output from the content seen so far (for streams that are cut)."""

    __slots__ = ("_chars", "_chunks", "_input", "_output", "done", "model", "texts")

    def __init__(self, *, keep_text: bool = False) -> None:
        self._input: int | None = None
        self._output: int | None = None
        self._chunks = 0
        self._chars = 0
        self.done = False
        self.model: str | None = None
        self.texts: list[str] | None = [] if keep_text else None
        """The streamed content, kept only when it is to be recorded."""

    def observe(self, event: Event) -> dict[str, Any] | None:
        """Account one event; returns its JSON payload (None for `[DONE]` or non-JSON)."""
        if event.data == DONE:
            self.done = True
            return None
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(payload, dict):
            return None
        self._read_reported(payload)
        if self.model is None:
            self.model = response_model(payload)
        text = _content_text(payload)
        if text:
            self._chunks += 1
            self._chars += len(text)
            if self.texts is not None:
                self.texts.append(text)
        if payload.get("type") == "message_stop":
            self.done = True
        return payload

    def reported(self) -> Usage | None:
        """The provider's own figures, once it sent its output count."""
        if self._output is None:
            return None
        return Usage(self._input or 0, self._output)

    def estimated_output(self) -> int:
        return max(self._chunks, math.ceil(self._chars / BYTES_PER_TOKEN))

    def _read_reported(self, payload: dict[str, Any]) -> None:
        message = payload.get("message")
        usage = read_usage(message) if payload.get("type") == "message_start" else None
        if usage is not None:  # Anthropic reports input at the start, output at the end
            self._input = usage.input_tokens
            return
        usage = read_usage(payload)
        if usage is None:
            return
        if payload.get("type") == "message_delta":
            self._output = usage.output_tokens
            if usage.input_tokens:
                self._input = usage.input_tokens
        else:
            self._input, self._output = usage.input_tokens, usage.output_tokens


def response_model(payload: Any) -> str | None:
    """The model that answered, from a JSON answer or stream event (either API's shape)."""
    if not isinstance(payload, dict):
        return None
    message = payload.get("message")
    model = message.get("model") if isinstance(message, dict) else payload.get("model")
    return model if isinstance(model, str) else None


def answer_text(payload: Any) -> str:
    """The generated text of a JSON answer (OpenAI choices or Anthropic content blocks)."""
    if not isinstance(payload, dict):
        return ""
    parts: list[str] = []
    for choice in payload.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else choice.get("text")
            if isinstance(text, str):
                parts.append(text)
    for block in payload.get("content") or ():
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


def _content_text(payload: dict[str, Any]) -> str:
    delta = payload.get("delta")
    if isinstance(delta, dict):  # Anthropic content_block_delta
        text = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
        return text if isinstance(text, str) else ""
    parts: list[str] = []
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for name in ("content", "reasoning_content", "refusal"):
                if isinstance(delta.get(name), str):
                    parts.append(delta[name])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    parts.append(function["arguments"])
    return "".join(parts)
