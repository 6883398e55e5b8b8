"""Anthropic's Messages API: `x-api-key` and `anthropic-version`."""

from extproc.config import Target
from extproc.headers import ANTHROPIC_BETA, ANTHROPIC_VERSION, X_API_KEY
from extproc.providers.base import Credentials, Location, ProviderApi
from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.schema import Operation

COUNT_TOKENS = "/v1/messages/count_tokens"


def credentials(target: Target) -> Credentials:
    provider = target.provider
    headers = [(ANTHROPIC_VERSION, provider.anthropic_version)]
    if provider.api_key is not None:
        headers.append((X_API_KEY, provider.api_key.reveal()))
    return tuple(headers)


def locate(operation: Operation, target: Target, stream: bool) -> Location:
    return Location(target.provider.base_path + "/v1/messages", credentials(target))


def locate_native(path: str, target: Target) -> Location | None:
    if path != COUNT_TOKENS:
        return None
    return Location(target.provider.base_path + COUNT_TOKENS, credentials(target))


API: ProviderApi = ProviderApi(
    ANTHROPIC,
    credentials,
    locate,
    "anthropic",
    locate_native,
    feature_headers=frozenset((ANTHROPIC_BETA,)),
    request_id_header="request-id",
)
