"""One module per provider kind: its wire schema, paths and credentials."""

from extproc.config import Provider
from extproc.providers import anthropic, azure, bedrock, gemini, openai, vertex
from extproc.providers.base import Location, ProviderApi

PROVIDER_APIS: dict[str, ProviderApi] = {
    "openai": openai.API,
    "azure": azure.API,
    "anthropic": anthropic.API,
    "gemini": gemini.API,
    "bedrock": bedrock.API,
}
REQUEST_ID_HEADERS = tuple(
    sorted(
        {
            api.request_id_header
            for api in (*PROVIDER_APIS.values(), *vertex.APIS.values())
            if api.request_id_header is not None
        }
    )
)
"""Where providers' answers carry their id for the call."""


def provider_api(provider: Provider) -> ProviderApi:
    """How the gateway talks to this provider: by its kind (and, on Vertex AI, by whose
    models it serves)."""
    if provider.kind == "vertex":
        return vertex.APIS[provider.publisher]
    return PROVIDER_APIS[provider.kind]


__all__ = ["REQUEST_ID_HEADERS", "Location", "ProviderApi", "provider_api"]
