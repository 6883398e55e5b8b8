"""Anthropic's native Messages API, passed through: `x-api-key` and `anthropic-version`."""

from extproc.config import Target
from extproc.endpoints.spec import JsonObject, ModelCall
from extproc.headers import ANTHROPIC_VERSION, X_API_KEY
from extproc.providers.base import UpstreamRequest, with_target
from extproc.providers.schema import require_schema


def translate(endpoint: ModelCall, target: Target, body: JsonObject) -> UpstreamRequest:
    provider = target.provider
    require_schema(endpoint, target, "anthropic")
    headers = [(ANTHROPIC_VERSION, provider.anthropic_version)]
    if provider.api_key is not None:
        headers.append((X_API_KEY, provider.api_key.reveal()))
    return UpstreamRequest(
        provider.base_path + endpoint.path, tuple(headers), with_target(target, body)
    )
