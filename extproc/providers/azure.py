"""Azure OpenAI: the deployment is in the path, the key in `api-key`."""

from urllib.parse import quote

from extproc.config import Target
from extproc.endpoints.spec import JsonObject, ModelCall
from extproc.headers import API_KEY
from extproc.providers.base import UpstreamRequest, with_target
from extproc.providers.schema import require_schema


def translate(endpoint: ModelCall, target: Target, body: JsonObject) -> UpstreamRequest:
    provider = target.provider
    require_schema(endpoint, target, "openai")
    deployment = quote(target.model, safe="")
    path = (
        f"{provider.base_path}/openai/deployments/{deployment}/{endpoint.suffix}"
        f"?api-version={quote(provider.api_version or '', safe='')}"
    )
    headers = () if provider.api_key is None else ((API_KEY, provider.api_key.reveal()),)
    return UpstreamRequest(path, headers, with_target(target, body))
