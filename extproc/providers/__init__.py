"""One translator per provider kind; they know nothing about Envoy."""

from extproc.config.schema import ProviderKind
from extproc.providers import anthropic, azure, openai
from extproc.providers.base import Translator, UpstreamRequest

TRANSLATORS: dict[ProviderKind, Translator] = {
    "openai": openai.translate,
    "azure": azure.translate,
    "anthropic": anthropic.translate,
}

__all__ = ["TRANSLATORS", "Translator", "UpstreamRequest"]
