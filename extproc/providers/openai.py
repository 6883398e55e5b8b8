"""Any OpenAI-compatible API (OpenAI, vLLM, Ollama, Groq, …): `Authorization: Bearer`."""

from extproc.config import Target
from extproc.headers import AUTHORIZATION
from extproc.providers.base import Location, ProviderApi
from extproc.translators.openai import OPENAI
from extproc.translators.schema import Operation

PATHS: dict[Operation, str] = {
    "chat": "/v1/chat/completions",
    "text_completion": "/v1/completions",
    "embeddings": "/v1/embeddings",
}


def locate(operation: Operation, target: Target, stream: bool) -> Location:
    provider = target.provider
    key = provider.api_key
    headers = () if key is None else ((AUTHORIZATION, f"Bearer {key.reveal()}"),)
    return Location(provider.base_path + PATHS[operation], headers)


API = ProviderApi(OPENAI, locate, "openai")
