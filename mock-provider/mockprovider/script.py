"""What the mock answers, whichever provider it plays: the reply's words or tool calls, why it
stops, and the usage it reports. Tests choose it with request headers:

  x-mock-words: 500              answer this many words (the reply text repeats)
  x-mock-word-bytes: 9000000     … each this long (one streamed event each: a large image
                                 chunk, say)
  x-mock-text: ["Call 555", "-0100 now"]
                                 answer this text, streamed one piece an event (a token each)
  x-mock-tool-calls: [{"name": "get_weather", "arguments": {"city": "Paris"}}]
                                 call these tools (they must be declared in the request)
  x-mock-cached-tokens: 40       report this much of the input as read from the prompt cache
  x-mock-cache-write-tokens: 20  … and this much as written to it (Anthropic, Bedrock, the
                                 Responses API)
  x-mock-reasoning-tokens: 30    report this much thinking on top of the answer

A request that asks to see the model's thinking (Gemini's includeThoughts, Claude's thinking on
Bedrock) gets THOUGHT before the answer, counted as reasoning tokens.

A request whose last turn carries tool results is answered with a text that quotes them (never
with tool calls), so a test sees the results arrived in the provider's own shape.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

REPLY = "Hello from the mock provider. This answer stands in for a real model."
THOUGHT = "The mock considers the question before it answers."
CHARS_PER_TOKEN = 4

Finish = Literal["stop", "length", "stop_sequence", "tool_calls"]


class MockError(Exception):
    """The request is one the real API refuses: a 4xx in the provider's error shape."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def estimate_tokens(value: Any) -> int:
    """A stable, rough token count: about four characters a token."""
    return max(1, len(orjson.dumps(value)) // CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return orjson.dumps(self.arguments).decode()


@dataclass(frozen=True)
class Prompt:
    """What the mock needs from a request, read by each provider's module."""

    input_tokens: int
    tools: Sequence[str] = ()
    """The names of the declared tools."""
    tool_results: Sequence[str] = ()
    """The text of the tool results in the last turn."""
    max_tokens: int | None = None
    stop: Sequence[str] = ()
    thinking: bool = False
    """The request asks to see the model's thinking."""


@dataclass
class Reply:
    words: list[str]
    calls: list[Call]
    finish: Finish
    stop_sequence: str | None
    input_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    thought: str = ""
    """The thinking shown before the answer."""
    id: str = field(default_factory=lambda: secrets.token_hex(12))

    @property
    def text(self) -> str:
        return "".join(self.words)

    @property
    def answer_tokens(self) -> int:
        """Output tokens of the visible answer: a word each, and the calls' arguments."""
        return len(self.words) + sum(estimate_tokens(call.arguments) for call in self.calls)

    @property
    def output_tokens(self) -> int:
        return self.answer_tokens + self.reasoning_tokens


def plan_reply(prompt: Prompt, headers: Mapping[str, str], call_id: str) -> Reply:
    """The reply to a request; `call_id` prefixes the ids of tool calls (`call_`, `toolu_`)."""
    # Tool results are answered in words, so that an agent's tool loop ends.
    spec = None if prompt.tool_results else headers.get("x-mock-tool-calls")
    calls = _tool_calls(spec, prompt, call_id)
    words = [] if calls else _words(headers.get("x-mock-words"), prompt.tool_results)
    if not calls and (text_pieces := headers.get("x-mock-text")):
        words = [str(piece) for piece in orjson.loads(text_pieces)]
    if (size := _number(headers, "x-mock-word-bytes")) and words:
        words = ["w" * size for _ in words]
    finish: Finish = "tool_calls" if calls else "stop"
    stop_sequence = None
    text = "".join(words)
    for sequence in prompt.stop:
        if sequence and sequence in text:
            text = text[: text.index(sequence)]
            words = [text] if text else []
            finish, stop_sequence = "stop_sequence", sequence
            break
    if prompt.max_tokens is not None and len(words) > prompt.max_tokens:
        words, finish = words[: prompt.max_tokens], "length"
    cached = min(_number(headers, "x-mock-cached-tokens"), prompt.input_tokens)
    written = min(_number(headers, "x-mock-cache-write-tokens"), prompt.input_tokens - cached)
    return Reply(
        words=words,
        calls=calls,
        finish=finish,
        stop_sequence=stop_sequence,
        input_tokens=prompt.input_tokens,
        cached_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=_number(headers, "x-mock-reasoning-tokens")
        or (estimate_tokens(THOUGHT) if prompt.thinking else 0),
        thought=THOUGHT if prompt.thinking else "",
    )


def _words(count: str | None, tool_results: Sequence[str]) -> list[str]:
    """A token a word; `count` asks for that many, else the reply once."""
    reply = f"Tool results: {' | '.join(tool_results)}." if tool_results else REPLY
    words = [word + " " for word in reply.split(" ")]
    if count is not None and count.isdigit():
        words = [words[index % len(words)] for index in range(int(count))]
    if words:
        words[-1] = words[-1].rstrip()
    return words


def _tool_calls(spec: str | None, prompt: Prompt, prefix: str) -> list[Call]:
    if spec is None:
        return []
    calls = orjson.loads(spec)
    for call in calls:
        if call["name"] not in prompt.tools:
            raise MockError(f"mock: the tool {call['name']!r} is not declared in the request")
    return [
        Call(f"{prefix}{secrets.token_hex(8)}", call["name"], call.get("arguments", {}))
        for call in calls
    ]


def _number(headers: Mapping[str, str], name: str) -> int:
    value = headers.get(name, "0")
    return int(value) if value.isdigit() else 0


def pieces(text: str, count: int = 3) -> list[str]:
    """Text split in up to `count` pieces, as providers stream tool arguments."""
    size = max(1, -(-len(text) // count))
    return [text[start : start + size] for start in range(0, len(text), size)]
