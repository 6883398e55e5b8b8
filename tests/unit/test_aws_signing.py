"""SigV4 as the gateway signs Bedrock requests: the mock, recomputing the signature with the
test credentials as AWS does, accepts it; a body or path changed after signing is refused;
temporary credentials near their expiry are renewed in a thread while requests keep signing."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials
from mockprovider.bedrock import TEST_CREDENTIALS, check_signature

from extproc.config import Target
from extproc.config.loader import parse_gateway
from extproc.credentials.aws import REFRESH_AHEAD_SECONDS, AwsCredentials
from extproc.providers.bedrock import sign
from tests.harness import wait_until

[(ACCESS_KEY, SECRET_KEY)] = TEST_CREDENTIALS.items()
CONFIG = """
providers:
  bedrock: {kind: bedrock, region: eu-west-1, base_url: "http://127.0.0.1:8443"}
models:
  claude: {provider: bedrock, model: "anthropic.claude-3-haiku-20240307-v1:0"}
keys: []
"""
PATH = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
BODY = b'{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}'


def target(credentials: AwsCredentials) -> Target:
    gateway = parse_gateway(CONFIG, source=Path("gateway.yaml"), environ={}, resolve_secrets=False)
    found = gateway.models["claude"].targets[0]
    return dataclasses.replace(found, provider=dataclasses.replace(found.provider, aws=credentials))


def received(headers: tuple[tuple[str, str], ...], path: str = PATH, body: bytes = BODY) -> Any:
    """The mock's verdict on the request as Envoy sends it (host and content type included)."""
    sent = dict(headers) | {"host": "127.0.0.1:8443", "content-type": "application/json"}
    return check_signature("POST", f"http://127.0.0.1:8443{path}", sent, body)


def test_a_signed_request_is_accepted_and_one_changed_after_signing_is_not() -> None:
    headers = sign(target(AwsCredentials(Credentials(ACCESS_KEY, SECRET_KEY, "token"))), PATH, BODY)

    assert dict(headers)["x-amz-security-token"] == "token"
    assert received(headers) is None
    assert received(headers, body=BODY.replace(b"Hi", b"Ho"))[1] == "InvalidSignatureException"
    assert received(headers, path=PATH.replace("converse", "converse-stream"))[0] == 403


def test_unknown_credentials_are_refused() -> None:
    headers = sign(target(AwsCredentials(Credentials("AKIDUNKNOWN", "s"))), PATH, BODY)
    assert received(headers)[1] == "UnrecognizedClientException"


class ExpiringSource:
    """Temporary credentials: expiring soon until renewed; the renewal waits for the test."""

    def __init__(self) -> None:
        self.renewed = threading.Event()
        self.release = threading.Event()
        self.current = Credentials(ACCESS_KEY, SECRET_KEY, "old").get_frozen_credentials()

    def refresh_needed(self, refresh_in: int) -> bool:
        assert refresh_in == REFRESH_AHEAD_SECONDS
        return self.current.token == "old"

    def get_frozen_credentials(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            self.release.wait(5)
            self.current = Credentials(ACCESS_KEY, SECRET_KEY, "new").get_frozen_credentials()
            self.renewed.set()
        return self.current


def test_credentials_near_expiry_are_renewed_in_a_thread_without_blocking() -> None:
    source = ExpiringSource()
    credentials = AwsCredentials(source)

    first = credentials.current()  # starts the renewal, which is held back
    second = credentials.current()  # does not wait for it, nor start another
    assert (first.token, second.token) == ("old", "old")
    source.release.set()
    assert source.renewed.wait(5)
    wait_until(lambda: credentials.current().token == "new", "never renewed")
    assert received(sign(target(credentials), PATH, BODY)) is None


def test_the_mock_checks_signatures_as_aws_documents_them() -> None:
    """AWS's published SigV4 test suite, `get-vanilla`: the mock accepts its signature and
    refuses it altered, so a request the mock accepts is one AWS would."""
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    signature = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    headers = {
        "host": "example.amazonaws.com",
        "x-amz-date": "20150830T123600Z",
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
        f"aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}",
    }

    def verdict(sent: dict[str, str]) -> Any:
        url = "https://example.amazonaws.com/"
        return check_signature("GET", url, sent, b"", {"AKIDEXAMPLE": secret}, "service")

    assert verdict(headers) is None
    altered = headers | {"authorization": headers["authorization"].replace("5fa0", "5fa1")}
    assert verdict(altered)[1] == "InvalidSignatureException"
    assert verdict(headers | {"x-amz-date": "20150830T123601Z"})[1] == "InvalidSignatureException"
