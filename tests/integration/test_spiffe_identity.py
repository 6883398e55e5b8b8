"""Workload identity: Envoy terminates TLS and requires client certificates from a test CA;
a certificate's SPIFFE ID (URI SAN) maps to its team through the identity rules. No
certificate, no connection; a client's own `x-forwarded-client-cert` changes nothing. Behind
a trusted hop (an Istio sidecar), the hop's `x-forwarded-client-cert` names the peer."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.certs import Authority, Issued
from tests.conftest import CHAT, GATEWAY_KEY, chat_config
from tests.harness import (
    MockProvider,
    RunningGateway,
    access_log_lines,
    assert_openai_error,
    logged_since,
    running_gateway,
    sha256,
)

pytestmark = pytest.mark.envoy

SEARCH_APP = "spiffe://cluster.local/ns/search/sa/ranker"
OTHER_APP = "spiffe://cluster.local/ns/billing/sa/invoicer"
FORGED_XFCC = f'By=spiffe://cluster.local/ns/extproc/sa/gateway;URI="{SEARCH_APP}"'


def configuration(
    directory: Path, mock: MockProvider, extra: dict[str, Any], identity: dict[str, Any]
) -> Path:
    rule = {
        "name": "search-workloads",
        "spiffe": "spiffe://cluster.local/ns/search/*",
        "principal": "{ns}/{sa}",
        "team": "search",
        "models": ["chat"],
    }
    return chat_config(
        directory,
        mock.url,
        {
            "identity": {"rules": [rule], **identity},
            "teams": {"search": {"limits": [{"requests": 1000, "per": "1d"}]}},
            "keys": [{"id": "app", "sha256": sha256(GATEWAY_KEY), "models": ["*"]}],
            **extra,
        },
    )


class Mtls:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.authority = Authority("mesh CA")
        self.ca = self.authority.write(directory / "ca.crt")
        self.server = self.authority.issue(
            directory, "envoy", dns=("localhost",), ips=("127.0.0.1",)
        )

    def client(self, name: str, spiffe: str) -> Issued:
        return self.authority.issue(self.directory, name, uris=(spiffe,), usages=("client",))


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Mtls:
    return Mtls(tmp_path_factory.mktemp("mtls"))


@pytest.fixture(scope="module")
def gateway(mock: MockProvider, mtls: Mtls) -> Iterator[tuple[Path, RunningGateway]]:
    tls = {"cert_file": "envoy.crt", "key_file": "envoy.key", "client_ca_file": "ca.crt"}
    config = configuration(mtls.directory, mock, {"listen": {"tls": tls}}, {})
    with running_gateway(config, mtls.directory / "gateway.log") as running:
        yield config, running


def https(gateway: RunningGateway) -> str:
    return gateway.url.replace("http://", "https://")


def call(
    gateway: RunningGateway, mtls: Mtls, client: Issued | None, **headers: str
) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(mtls.ca))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    with httpx.Client(verify=context, timeout=30) as http:
        return http.post(https(gateway) + "/v1/chat/completions", json=CHAT, headers=headers)


def plain_call(gateway: RunningGateway, headers: dict[str, str]) -> httpx.Response:
    """Without TLS (the gateways with no listener certificate)."""
    return httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=30)


def test_a_workload_certificate_maps_to_its_team(
    gateway: tuple[Path, RunningGateway], mtls: Mtls
) -> None:
    config, running = gateway
    before = len(access_log_lines(config))
    answer = call(running, mtls, mtls.client("ranker", SEARCH_APP))
    assert answer.status_code == 200, answer.text
    logged = logged_since(config, before)
    assert (logged["principal_kind"], logged["subject"], logged["team"]) == (
        "spiffe",
        "search/ranker",
        "search",
    )


def test_without_a_client_certificate_there_is_no_connection(
    gateway: tuple[Path, RunningGateway], mtls: Mtls, mock: MockProvider
) -> None:
    received = len(mock.requests())
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        call(gateway[1], mtls, None, authorization=f"Bearer {GATEWAY_KEY}")
    assert len(mock.requests()) == received


def test_a_client_cannot_claim_another_identity_with_a_header(
    gateway: tuple[Path, RunningGateway], mtls: Mtls
) -> None:
    """Its certificate says billing; its forged header says search: the certificate wins."""
    answer = call(
        gateway[1],
        mtls,
        mtls.client("invoicer", OTHER_APP),
        **{"x-forwarded-client-cert": FORGED_XFCC},
    )
    assert assert_openai_error(answer, 403)["code"] == "identity_not_allowed"


def test_behind_a_trusted_hop_its_header_names_the_peer(mock: MockProvider, tmp_path: Path) -> None:
    config = configuration(tmp_path, mock, {}, {"xfcc_from_trusted_hop": True})
    with running_gateway(config, tmp_path / "gateway.log") as running:
        answer = plain_call(running, {"x-forwarded-client-cert": FORGED_XFCC})
        assert answer.status_code == 200, answer.text
        assert logged_since(config, 0)["subject"] == "search/ranker"


def test_without_a_trusted_hop_a_client_sent_header_is_dropped(
    mock: MockProvider, tmp_path: Path
) -> None:
    config = configuration(tmp_path, mock, {}, {})
    with running_gateway(config, tmp_path / "gateway.log") as running:
        answer = plain_call(running, {"x-forwarded-client-cert": FORGED_XFCC})
        assert assert_openai_error(answer, 401)["code"] == "invalid_api_key"
        keyed = plain_call(
            running,
            {"x-forwarded-client-cert": FORGED_XFCC, "authorization": f"Bearer {GATEWAY_KEY}"},
        )
        assert keyed.status_code == 200
        assert "x-forwarded-client-cert" not in {
            name.lower() for name in mock.last_request()["headers"]
        }
