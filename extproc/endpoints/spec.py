"""What an API path is: a model call that goes upstream, or an answer the gateway gives itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from extproc.config import Gateway, Principal
from extproc.translators.ir import JsonObject
from extproc.translators.schema import Operation, WireSchema


@dataclass(frozen=True, slots=True)
class ModelCall:
    """A POST whose JSON body names a model; the gateway rewrites it and sends it upstream."""

    path: str
    operation: Operation
    """The OpenTelemetry GenAI operation name (`chat`, `text_completion`, `embeddings`)."""
    schema: WireSchema
    """The schema the client speaks (its requests, answers, streams and errors)."""
    check: Callable[[JsonObject], None]
    """Raises BadRequest when the fields this endpoint needs are missing or of the wrong type."""


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A POST asking how many input tokens a call in the client's schema would use. Providers
    that count natively answer it; for the others the gateway estimates. Never charged."""

    path: str
    operation: Operation
    """The call whose input it counts."""
    schema: WireSchema
    """The schema the client speaks; the body is a call in it, without output settings."""
    check: Callable[[JsonObject], None]
    estimate_answer: Callable[[int], JsonObject]
    """The answer with the gateway's own estimate of the input tokens."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A GET or DELETE of a response its provider stored, by the id in the path: sent to
    that provider when the caller may use the alias the response was created through."""

    response_id: Callable[[str], str]
    """The response id in a request path this endpoint matched."""


@dataclass(frozen=True, slots=True)
class LocalAnswer:
    """A GET the gateway answers itself, with a JSON body."""

    answer: Callable[[Gateway, Principal, str, Mapping[str, list[str]]], bytes]
    """(gateway, caller, request path, request headers) → response body."""


@dataclass(frozen=True, slots=True)
class McpEndpoint:
    """`/mcp/<name>`: the Streamable HTTP endpoint of the MCP server of that name (POST
    messages, GET the server's own stream, DELETE the session)."""

    server: str


PostCall = ModelCall | TokenCount
"""A POST whose JSON body names a model (an alias)."""
Endpoint = ModelCall | TokenCount | StoredResponse | LocalAnswer | McpEndpoint
