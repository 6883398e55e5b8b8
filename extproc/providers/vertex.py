"""Google Cloud Vertex AI: Google's models (Gemini's API, under the project's path) and
Anthropic's (Claude's Messages API through `rawPredict`, `anthropic_version` in the body and
the model in the path), both with an OAuth access token from Application Default
Credentials."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote

from extproc.config import Target
from extproc.config.schema import Publisher
from extproc.errors import BadRequest
from extproc.headers import AUTHORIZATION
from extproc.providers.base import Credentials, Location, ProviderApi
from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.gemini import GEMINI
from extproc.translators.ir import JsonObject
from extproc.translators.schema import Operation, merged_with

ANTHROPIC_VERSION = "vertex-2023-10-16"
OTEL_NAME = "gcp.vertex_ai"


def credentials(target: Target) -> Credentials:
    gcp = target.provider.gcp
    return () if gcp is None else ((AUTHORIZATION, f"Bearer {gcp.token()}"),)


def _model_path(target: Target, method: str) -> str:
    provider = target.provider
    return (
        f"{provider.base_path}/v1/projects/{provider.project}/locations/{provider.location}"
        f"/publishers/{provider.publisher}/models/{quote(target.model, safe='')}:{method}"
    )


def locate_gemini(operation: Operation, target: Target, stream: bool) -> Location:
    if operation != "chat":
        raise BadRequest(
            "This model is served by a provider (vertex) that does not offer this endpoint.",
            param="model",
            code="unsupported_endpoint",
        )
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return Location(_model_path(target, method), credentials(target))


def locate_anthropic(operation: Operation, target: Target, stream: bool) -> Location:
    method = "streamRawPredict" if stream else "rawPredict"
    return Location(_model_path(target, method), credentials(target))


def _claude_body(body: JsonObject, options: Any) -> JsonObject:
    """Claude on Vertex: the Messages body without `model` (the path names it) and with
    Vertex's `anthropic_version`."""
    merged = merged_with(body, options)
    merged.pop("model", None)
    return merged | {"anthropic_version": ANTHROPIC_VERSION}


CLAUDE = replace(
    ANTHROPIC,
    provider=replace(ANTHROPIC.provider, model_in_body=False, merge_options=_claude_body),
)
APIS: dict[Publisher, ProviderApi] = {
    "google": ProviderApi(GEMINI, credentials, locate_gemini, OTEL_NAME),
    "anthropic": ProviderApi(CLAUDE, credentials, locate_anthropic, OTEL_NAME),
}
