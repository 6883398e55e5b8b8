"""Amazon Bedrock's runtime: Converse (`/model/{model}/converse`, `…/converse-stream` with
binary event-stream frames), every request signed with AWS SigV4 over the exact body sent."""

from __future__ import annotations

from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from extproc.config import Target
from extproc.headers import AUTHORIZATION, AWS_SIGNATURE_HEADERS, CONTENT_TYPE
from extproc.providers.base import Credentials, Location, ProviderApi
from extproc.translators.bedrock import BEDROCK
from extproc.translators.schema import Operation

SERVICE = "bedrock"
"""The service name in the signature's scope."""
SIGNED_HEADERS = (AUTHORIZATION, *AWS_SIGNATURE_HEADERS)


def credentials(target: Target) -> Credentials:
    return ()  # each request is signed instead (see `sign`)


def locate(operation: Operation, target: Target, stream: bool) -> Location:
    """Chat through Converse; embeddings through InvokeModel."""
    method = "invoke" if operation == "embeddings" else "converse-stream" if stream else "converse"
    path = f"{target.provider.base_path}/model/{quote(target.model, safe='')}/{method}"
    return Location(path, ())


def sign(target: Target, path: str, body: bytes) -> Credentials:
    """SigV4 headers for a POST of `body` to `path`: they cover the host, the path, the
    content type and the body's digest, so nothing may change them after signing."""
    provider = target.provider
    assert provider.aws is not None, "bedrock providers resolve their credentials at load"
    request = AWSRequest(
        method="POST",
        url=f"{provider.scheme}://{provider.authority}{path}",
        data=body,
        headers={CONTENT_TYPE: "application/json"},
    )
    SigV4Auth(provider.aws.current(), SERVICE, provider.region).add_auth(request)
    return tuple(
        (name, str(request.headers[name])) for name in SIGNED_HEADERS if name in request.headers
    )


API: ProviderApi = ProviderApi(
    BEDROCK, credentials, locate, "aws.bedrock", sign=sign, request_id_header="x-amzn-requestid"
)
