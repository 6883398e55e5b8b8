"""One call's way between its client's schema and its provider's.

When both speak the same schema the call passes through: the body keeps every field the client
sent, answers and streams go back byte for byte, and the provider's schema is only read (for
usage). Otherwise the request is parsed into the neutral form and written in the provider's
schema, and answers, streams and errors are translated back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from extproc.config.model import ReasoningPolicy
from extproc.errors import ApiError, BadRequest
from extproc.translators.ir import (
    ChatAnswer,
    ChatRequest,
    EmbeddingAnswer,
    EmbeddingRequest,
    JsonObject,
)
from extproc.translators.reasoning import fit_reasoning
from extproc.translators.schema import (
    ClientSide,
    Operation,
    ProviderSide,
    StreamDecoder,
    StreamEncoder,
    WireSchema,
)
from extproc.usage import Usage


@dataclass(frozen=True, slots=True)
class Translation:
    client: ClientSide
    provider: ProviderSide
    operation: Operation
    model: str
    """The upstream model."""
    request: ChatRequest | EmbeddingRequest | None = None
    """The neutral request when the call is translated; None when it passes through."""
    hide_usage: bool = False
    """The gateway asked the provider's stream for usage the client did not ask for."""
    stream: bool = False
    passed_through: bool = False
    """The body went upstream as the client wrote it (the provider speaks its schema); its
    answer may still be read in the neutral form (`request` set: it is screened)."""

    @property
    def translated(self) -> bool:
        return self.request is not None

    def answer(self, payload: JsonObject, fallback_usage: Usage) -> bytes:
        """The client's JSON answer to a translated call; `fallback_usage` stands in when the
        provider reports none (what the gateway charges)."""
        return self.write_answer(self.read_answer(payload, fallback_usage))

    def read_answer(
        self, payload: JsonObject, fallback_usage: Usage
    ) -> ChatAnswer | EmbeddingAnswer:
        """The provider's JSON answer in the neutral form, with its usage (or the fallback)."""
        if isinstance(self.request, EmbeddingRequest):
            assert self.provider.parse_embeddings_answer is not None
            embeddings = self.provider.parse_embeddings_answer(payload, self.model)
            return embeddings if embeddings.usage else replace(embeddings, usage=fallback_usage)
        answer = self.provider.parse_chat_answer(payload, self.model)
        return answer if answer.usage else replace(answer, usage=fallback_usage)

    def write_answer(self, answer: ChatAnswer | EmbeddingAnswer) -> bytes:
        """A neutral answer as the client's JSON answer."""
        request = self.request
        if isinstance(answer, EmbeddingAnswer):
            assert isinstance(request, EmbeddingRequest)
            assert self.client.build_embeddings_answer is not None
            return orjson.dumps(self.client.build_embeddings_answer(answer, request))
        assert isinstance(request, ChatRequest), "translated calls carry their request"
        return orjson.dumps(self.client.build_chat_answer(answer, request))

    def decoder(self) -> StreamDecoder:
        return self.provider.decoder(self.model)

    def encoder(self) -> StreamEncoder | None:
        """The client's stream encoder; None when the stream passes through."""
        if not isinstance(self.request, ChatRequest):
            return None
        return self.client.encoder(self.request, self.model)

    def error(self, status: int, body: bytes) -> ApiError:
        return self.provider.parse_error(status, body)


def translate_request(
    client: WireSchema,
    provider: WireSchema,
    operation: Operation,
    body: JsonObject,
    *,
    model: str,
    provider_kind: str,
    options: Mapping[str, Any],
    default_max_tokens: int,
    stream_usage: bool,
    reasoning: ReasoningPolicy = "map",
    neutral: bool = False,
) -> tuple[Translation, JsonObject]:
    """The call's translation and the body to send upstream: in the provider's schema, with
    the target's forced `options` merged in and the upstream `model`.

    `stream_usage`: ask an OpenAI-style stream for its usage when the client did not;
    `reasoning`: what a translated call does with the client's thinking request;
    `neutral`: a chat call's answer is read in the neutral form even where the call passes
    through (it is screened there); the body still goes as the client wrote it."""
    if operation not in provider.provider.operations:
        raise BadRequest(
            f"This model is served by a provider ({provider_kind}) that does not offer "
            f"this endpoint.",
            param="model",
            code="unsupported_endpoint",
        )
    assert client.client is not None, "clients speak a schema with a client side"
    request: ChatRequest | EmbeddingRequest | None = None
    passed = client.name == provider.name
    if passed:
        upstream = client.client.passed_through(body)
        if neutral and operation == "chat":
            request = client.client.parse_chat(body, provider_kind)
    elif operation == "chat":
        request = client.client.parse_chat(body, provider_kind)
        request = fit_reasoning(request, provider_kind, model, reasoning)
        assert provider.provider.build_chat is not None, "providers' own schemas build calls"
        upstream = provider.provider.build_chat(request, default_max_tokens)
    else:
        # Embeddings: only OpenAI's schema has clients, and a provider schema that offers
        # them has a builder (operations says so).
        assert client.client.parse_embeddings is not None
        assert provider.provider.build_embeddings is not None
        request = client.client.parse_embeddings(body, provider_kind)
        upstream = provider.provider.build_embeddings(request, model)
    upstream = provider.provider.merge_options(upstream, options)
    if provider.provider.model_in_body:
        upstream["model"] = model
    hide_usage = False
    if stream_usage and provider.provider.with_stream_usage is not None:
        upstream, added = provider.provider.with_stream_usage(operation, upstream)
        hide_usage = added and request is None
    translation = Translation(
        client=client.client,
        provider=provider.provider,
        operation=operation,
        model=model,
        request=request,
        hide_usage=hide_usage,
        stream=body.get("stream") is True,
        passed_through=passed,
    )
    return translation, upstream
