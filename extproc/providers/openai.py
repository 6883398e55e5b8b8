"""Any OpenAI-compatible API (OpenAI, vLLM, Ollama, Groq, …): `Authorization: Bearer`."""

from extproc.config import Target
from extproc.endpoints.spec import JsonObject, ModelCall
from extproc.headers import AUTHORIZATION
from extproc.providers.base import UpstreamRequest, with_target
from extproc.providers.schema import require_schema


def translate(endpoint: ModelCall, target: Target, body: JsonObject) -> UpstreamRequest:
    provider = target.provider
    require_schema(endpoint, target, "openai")
    headers = (
        ()
        if provider.api_key is None
        else ((AUTHORIZATION, f"Bearer {provider.api_key.reveal()}"),)
    )
    return UpstreamRequest(provider.base_path + endpoint.path, headers, with_target(target, body))
