"""Any OpenAI-compatible API (OpenAI, vLLM, Ollama, Groq, …): `Authorization: Bearer`."""

from extproc.config import Target
from extproc.headers import (
    AUTHORIZATION,
    OPENAI_BETA,
    OPENAI_ORGANIZATION,
    OPENAI_PROJECT,
    REQUEST_ID,
)
from extproc.providers.base import Credentials, Location, ProviderApi, in_responses_api
from extproc.translators.openai import OPENAI
from extproc.translators.schema import Operation

PATHS: dict[Operation, str] = {
    "chat": "/v1/chat/completions",
    "text_completion": "/v1/completions",
    "embeddings": "/v1/embeddings",
}


def credentials(target: Target) -> Credentials:
    """The key, and the account the gateway's use of it is billed to (configuration alone
    chooses it: a client's own organization or project header never reaches OpenAI)."""
    provider = target.provider
    key = provider.api_key
    headers = [] if key is None else [(AUTHORIZATION, f"Bearer {key.reveal()}")]
    if provider.organization is not None:
        headers.append((OPENAI_ORGANIZATION, provider.organization))
    if provider.project is not None:
        headers.append((OPENAI_PROJECT, provider.project))
    return tuple(headers)


def locate(operation: Operation, target: Target, stream: bool) -> Location:
    return Location(target.provider.base_path + PATHS[operation], credentials(target))


def locate_native(path: str, target: Target) -> Location | None:
    """The Responses API, where the provider serves it."""
    if not in_responses_api(path, target):
        return None
    return Location(target.provider.base_path + path, credentials(target))


API: ProviderApi = ProviderApi(
    OPENAI,
    credentials,
    locate,
    "openai",
    locate_native,
    feature_headers=frozenset((OPENAI_BETA,)),
    request_id_header=REQUEST_ID,
)
