"""The neutral form of a model call, between one wire schema and another.

Every wire schema translates its requests into these values and back, its answers, stream
events and errors too; a call from an OpenAI client to an Anthropic provider goes
OpenAI → neutral → Anthropic, and its answer Anthropic → neutral → OpenAI. Adding a schema is
adding its translations to and from this form, not one per pair of schemas.

The values hold meaning, not spelling: two requests that ask a model the same thing are equal
here whatever schema they came from (consecutive turns of the same role are merged, tool
results are user turns, arguments are parsed JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from extproc.errors import ApiError
from extproc.usage import Usage

JsonObject = dict[str, Any]
Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Image:
    """An image by value (base64 `data` of type `media_type`) or by `url`."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: JsonObject


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    name: str
    """The called tool's name, found through `call_id` (Gemini answers by name)."""
    content: tuple[Text | Image, ...]
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Reasoning:
    """Thinking an assistant turn showed: its text, and the opaque signature its provider
    needs to see it again (`origin`: that provider's kind; only that kind may be sent it)."""

    text: str
    signature: str | None = None
    origin: str | None = None


Part = Text | Image | ToolCall | ToolResult | Reasoning


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str | None
    parameters: JsonObject
    """A JSON Schema of the arguments."""
    namespace: str | None = None
    """The client's group of this tool (a Responses `namespace` tool); `name` then is the
    namespace, NAMESPACE_SEPARATOR and the tool's own name, which every provider accepts."""


NAMESPACE_SEPARATOR = "__"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None
    """The tool to call when `mode` is `tool`."""


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """Structured output: any JSON object, or one that follows `schema`."""

    kind: Literal["json_object", "json_schema"]
    schema: JsonObject | None = None
    name: str | None = None


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
REASONING_EFFORTS: tuple[ReasoningEffort, ...] = (
    "none",
    "minimal",
    "low",
    "medium",
    "high",
    "xhigh",
)
"""OpenAI's words for how much a model thinks, from not at all to the most."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: tuple[Message, ...]
    system: tuple[str, ...] = ()
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    output_format: OutputFormat | None = None
    user: str | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    reasoning_effort: ReasoningEffort | None = None
    """How much the model should think before answering; None: the model's default."""
    reasoning_budget: int | None = None
    """The most tokens the model may think for, where the client set a budget."""
    reasoning_shown: bool = False
    """The client wants the model's thinking back (an Anthropic client's thinking blocks)."""
    context_edits: tuple[JsonObject, ...] | None = None
    """What the gateway cleared from the conversation for the client (Anthropic's
    `context_management.applied_edits`); None: the client asked for no context editing."""
    stream: bool = False
    stream_usage: bool = False
    """The client wants the usage in its stream (Anthropic streams always carry it)."""
    param_names: Mapping[str, str] = field(default_factory=dict, compare=False)
    """The client's name for a field where it differs from the field's name here; errors
    about a field name it as the client wrote it."""

    def param(self, name: str) -> str:
        return self.param_names.get(name, name)


StopReason = Literal["stop", "length", "tool_calls", "stop_sequence", "content_filter", "other"]
"""Why generation ended: naturally, at the token cap, to call tools, at one of the request's
stop sequences, blocked by a content filter, or for a provider-specific reason."""


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    id: str
    model: str
    parts: tuple[Text | ToolCall | Reasoning, ...]
    stop: StopReason
    usage: Usage | None
    """None when the provider did not report it (the gateway's estimate then stands in)."""
    stop_sequence: str | None = None
    created: int = 0


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    inputs: tuple[str, ...]
    dimensions: int | None = None
    base64: bool = False
    """The client wants each vector as base64 of little-endian float32 (OpenAI's option)."""


@dataclass(frozen=True, slots=True)
class EmbeddingAnswer:
    vectors: tuple[tuple[float, ...], ...]
    model: str
    usage: Usage | None
    """None when the provider does not report it (the gateway's estimate then stands)."""


# Stream events: what a provider's event stream says, one step at a time. Usage figures are
# cumulative: the last `UsageReport` holds the totals.


@dataclass(frozen=True, slots=True)
class StreamStart:
    id: str
    model: str
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Thinking the provider streams (only Anthropic clients get it; it counts as output all
    the same), or the signature that closes it."""

    text: str
    signature: str = ""
    origin: str | None = None
    """The kind of provider that wrote it, where it signed it."""


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    index: int
    """The call's position among this answer's tool calls, from 0."""
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolArgumentsDelta:
    index: int
    fragment: str
    """A piece of the arguments' JSON text."""


@dataclass(frozen=True, slots=True)
class Finish:
    reason: StopReason
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class UsageReport:
    usage: Usage


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The provider reported an error inside the stream."""

    error: ApiError


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The provider ended its stream properly (`[DONE]`, `message_stop`, end of body)."""


StreamEvent = (
    StreamStart
    | TextDelta
    | ReasoningDelta
    | ToolCallStart
    | ToolArgumentsDelta
    | Finish
    | UsageReport
    | StreamFailed
    | StreamEnd
)
