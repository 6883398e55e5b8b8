"""One module per provider kind: its wire schema, paths and credentials."""

from extproc.config.schema import ProviderKind
from extproc.providers import anthropic, azure, bedrock, gemini, openai
from extproc.providers.base import Location, ProviderApi

PROVIDER_APIS: dict[ProviderKind, ProviderApi] = {
    "openai": openai.API,
    "azure": azure.API,
    "anthropic": anthropic.API,
    "gemini": gemini.API,
    "bedrock": bedrock.API,
}

__all__ = ["PROVIDER_APIS", "Location", "ProviderApi"]
