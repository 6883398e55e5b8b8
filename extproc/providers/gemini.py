"""Google's Gemini API: the model and method are in the path, the key in `x-goog-api-key`.
Streams use `streamGenerateContent?alt=sse` (server-sent events)."""

from urllib.parse import quote

from extproc.config import Target
from extproc.headers import GOOG_API_KEY
from extproc.providers.base import Credentials, Location, ProviderApi
from extproc.translators.gemini import GEMINI
from extproc.translators.schema import Operation

DEFAULT_API_VERSION = "v1beta"


def locate(operation: Operation, target: Target, stream: bool) -> Location:
    provider = target.provider
    if operation == "embeddings":
        method = "batchEmbedContents"
    else:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    version = provider.api_version or DEFAULT_API_VERSION
    path = f"{provider.base_path}/{version}/models/{quote(target.model, safe='')}:{method}"
    return Location(path, credentials(target))


def credentials(target: Target) -> Credentials:
    key = target.provider.api_key
    return () if key is None else ((GOOG_API_KEY, key.reveal()),)


API: ProviderApi = ProviderApi(GEMINI, credentials, locate, "gcp.gemini")
