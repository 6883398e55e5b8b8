"""Anthropic's Messages API: `x-api-key` and `anthropic-version`."""

from extproc.config import Target
from extproc.headers import ANTHROPIC_VERSION, X_API_KEY
from extproc.providers.base import Location, ProviderApi
from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.schema import Operation


def locate(operation: Operation, target: Target, stream: bool) -> Location:
    provider = target.provider
    headers = [(ANTHROPIC_VERSION, provider.anthropic_version)]
    if provider.api_key is not None:
        headers.append((X_API_KEY, provider.api_key.reveal()))
    return Location(provider.base_path + "/v1/messages", tuple(headers))


API = ProviderApi(ANTHROPIC, locate, "anthropic")
