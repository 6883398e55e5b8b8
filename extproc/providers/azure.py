"""Azure OpenAI: the deployment and `api-version` are in the path, the key in `api-key`."""

from urllib.parse import quote

from extproc.config import Target
from extproc.headers import API_KEY, OPENAI_BETA, REQUEST_ID
from extproc.providers.base import (
    RESPONSES_INPUT_TOKENS,
    Credentials,
    Location,
    ProviderApi,
    in_responses_api,
)
from extproc.translators.openai import OPENAI
from extproc.translators.schema import Operation

SUFFIXES: dict[Operation, str] = {
    "chat": "chat/completions",
    "text_completion": "completions",
    "embeddings": "embeddings",
}


def credentials(target: Target) -> Credentials:
    key = target.provider.api_key
    return () if key is None else ((API_KEY, key.reveal()),)


def locate(operation: Operation, target: Target, stream: bool) -> Location:
    provider = target.provider
    deployment = quote(target.model, safe="")
    path = (
        f"{provider.base_path}/openai/deployments/{deployment}/{SUFFIXES[operation]}"
        f"?api-version={quote(provider.api_version or '', safe='')}"
    )
    return Location(path, credentials(target))


def locate_native(path: str, target: Target) -> Location | None:
    """Azure's Responses API, in its v1 API (the deployment is the body's `model`, and no
    `api-version`); it counts no input tokens."""
    if not in_responses_api(path, target) or path == RESPONSES_INPUT_TOKENS:
        return None
    return Location(f"{target.provider.base_path}/openai{path}", credentials(target))


API: ProviderApi = ProviderApi(
    OPENAI,
    credentials,
    locate,
    "azure.ai.openai",
    locate_native,
    feature_headers=frozenset((OPENAI_BETA,)),
    request_id_header=REQUEST_ID,
)
