"""Any OpenAI-compatible API (OpenAI, vLLM, Ollama, Groq, …): `Authorization: Bearer`."""

from extproc.config import Target
from extproc.headers import AUTHORIZATION
from extproc.providers.base import Credentials, Location, ProviderApi, in_responses_api
from extproc.translators.openai import OPENAI
from extproc.translators.schema import Operation

PATHS: dict[Operation, str] = {
    "chat": "/v1/chat/completions",
    "text_completion": "/v1/completions",
    "embeddings": "/v1/embeddings",
}


def credentials(target: Target) -> Credentials:
    key = target.provider.api_key
    return () if key is None else ((AUTHORIZATION, f"Bearer {key.reveal()}"),)


def locate(operation: Operation, target: Target, stream: bool) -> Location:
    return Location(target.provider.base_path + PATHS[operation], credentials(target))


def locate_native(path: str, target: Target) -> Location | None:
    """The Responses API, where the provider serves it."""
    if not in_responses_api(path, target):
        return None
    return Location(target.provider.base_path + path, credentials(target))


API = ProviderApi(OPENAI, credentials, locate, "openai", locate_native)
