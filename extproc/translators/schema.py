"""What a wire schema knows, as the request path uses it.

A schema has a provider side (what the gateway sends to a provider that speaks it and reads
back) and, for the schemas clients speak, a client side (what the gateway reads from such a
client and answers it). Both sides translate to and from the neutral form in `ir`.
Translators know nothing about Envoy: they take and return plain values and bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from extproc.errors import ApiError
from extproc.sse import EVENT_STREAM, Block, EventParser
from extproc.translators.ir import (
    ChatAnswer,
    ChatRequest,
    EmbeddingAnswer,
    EmbeddingRequest,
    JsonObject,
    StreamEvent,
)
from extproc.usage import Usage

SchemaName = Literal["openai", "anthropic", "gemini", "responses", "bedrock"]
Operation = Literal["chat", "text_completion", "embeddings"]
"""The OpenTelemetry GenAI operation names of the calls the gateway serves."""

EventData = JsonObject | str
"""A stream event's data: its JSON object, or the text when it is not one (`[DONE]`)."""


def merged_with(body: JsonObject, options: Mapping[str, Any]) -> JsonObject:
    """The body with forced options; objects merge field by field (so
    `{generationConfig: {temperature: 0}}` keeps the other generation settings)."""
    merged = dict(body)
    for name, value in options.items():
        current = merged.get(name)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged[name] = merged_with(current, value)
        else:
            merged[name] = value
    return merged


class StreamDecoder(Protocol):
    """Reads a provider's event stream, one event's data at a time."""

    def decode(self, data: EventData) -> list[StreamEvent]: ...

    def end(self) -> list[StreamEvent]:
        """The events the end of the body implies (a schema without an end event)."""
        ...


class Framer(Protocol):
    """Splits a provider's stream body into events, whatever chunks it arrives in."""

    def feed(self, chunk: bytes, *, end: bool = False) -> list[Block]: ...


class StreamEncoder(Protocol):
    """Writes a client's event stream from neutral events."""

    def encode(self, event: StreamEvent) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ProviderSide:
    operations: frozenset[Operation]
    """The calls providers of this schema serve."""
    model_in_body: bool
    """Whether the body names the model (else the path does)."""

    # The quota's view of a body in this schema.
    input_fields: Mapping[Operation, tuple[str, ...]]
    """The body fields that make up the input (the prompt estimate is their size)."""
    output_cap: Callable[[Operation, JsonObject], int | None]
    """The output the body asks for at most (all choices together); None if it sets none."""
    with_output_cap: Callable[[Operation, JsonObject, int], JsonObject]
    """The body asking for at most this much output in all."""

    # Requests.
    build_chat: Callable[[ChatRequest, int], JsonObject] | None
    """(request, output cap to use when the request sets none) → body; raises BadRequest
    naming a field the schema cannot express. None for a schema that no call is translated
    to (it only passes its own clients' calls through)."""
    build_embeddings: Callable[[EmbeddingRequest, str], JsonObject] | None
    """(request, upstream model) → body."""

    # Answers.
    read_usage: Callable[[Any], Usage | None]
    read_model: Callable[[Any], str | None]
    read_text: Callable[[Any], str]
    """The generated text of a JSON answer (for recording, when that is on)."""
    parse_chat_answer: Callable[[JsonObject, str], ChatAnswer]
    """(answer, the upstream model asked for) → neutral answer."""
    parse_embeddings_answer: Callable[[JsonObject, str], EmbeddingAnswer] | None
    decoder: Callable[[str], StreamDecoder]
    """A stream decoder for one answer to the given upstream model."""
    parse_error: Callable[[int, bytes], ApiError]

    merge_options: Callable[[JsonObject, Mapping[str, Any]], JsonObject] = merged_with
    framer: Callable[[int], Framer] = EventParser
    """How this schema's streams are framed (given the largest event to take): server-sent
    events, unless it says otherwise."""
    stream_type: str = EVENT_STREAM
    """The content type of this schema's streams."""
    """The body with a target's forced options (in this schema) merged in."""

    # Streams whose usage the gateway asked for itself (OpenAI's `include_usage`).
    with_stream_usage: Callable[[Operation, JsonObject], tuple[JsonObject, bool]] | None = None
    """The streaming body asking for its usage; True when that was added."""
    without_usage: Callable[[bytes, JsonObject], bytes] | None = None
    """A relayed event (raw bytes, parsed data) with the usage the client did not ask for
    removed; empty when nothing is left of it."""


FinalUsage = Callable[[str | None, JsonObject], JsonObject | None]
"""(event name, event data) → the usage object of the final usage event, or None for any
other event."""


@dataclass(frozen=True, slots=True)
class ClientSide:
    parse_chat: Callable[[JsonObject, str], ChatRequest]
    """(body, provider kind) → neutral request; raises BadRequest naming a field that cannot
    be carried to that provider."""
    parse_embeddings: Callable[[JsonObject, str], EmbeddingRequest] | None
    build_chat_answer: Callable[[ChatAnswer, ChatRequest], JsonObject]
    """(answer, the request it answers) → the client's answer."""
    build_embeddings_answer: Callable[[EmbeddingAnswer, EmbeddingRequest], JsonObject] | None
    encoder: Callable[[ChatRequest, str], StreamEncoder]
    """(request, upstream model) → a stream encoder for its answer."""
    stream_error: Callable[[ApiError, int], bytes]
    """(error, events the client got so far) → the bytes that end a stream with the error,
    in this schema."""
    build_error: Callable[[ApiError], bytes]
    is_native_error: Callable[[bytes], bool]
    """Whether an error body already has this schema's shape (then it passes unchanged)."""
    final_usage: FinalUsage
    """Where a stream in this schema reports its usage at the end (the cost goes there)."""
    passed_through: Callable[[JsonObject], JsonObject] = lambda body: body
    """The body of a call that passes through to a provider of this schema: what only the
    gateway may read is taken out of it."""


@dataclass(frozen=True, slots=True)
class WireSchema:
    name: SchemaName
    provider: ProviderSide
    client: ClientSide | None = None
    """None for schemas only providers speak."""
