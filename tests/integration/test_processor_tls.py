"""The processor trusts only Envoy: on TCP it requires mTLS, and a client without Envoy's
certificate gets nothing — no health answer, and above all no ext_proc answer carrying a
provider key, whatever gateway key it presents. Through a real Envoy, which proves itself
with its client certificate and checks the processor's."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.envoyapi.messages import ProcessingRequest, ProcessingResponse
from tests.certs import Authority, Issued
from tests.conftest import GATEWAY_KEY, OPENAI_KEY
from tests.harness import (
    ROOT,
    MockProvider,
    Process,
    envoy_only,
    extproc,
    free_port,
    sha256,
    wait_until,
    write_config,
)
from tests.stream.support import body, headers

pytestmark = pytest.mark.envoy

PROCESS = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"


@dataclass
class Setup:
    config: Path
    address: str
    ca: Path
    envoy: Issued
    rogue: Issued
    processor: Issued
    authority: Authority
    directory: Path


@pytest.fixture(scope="module")
def setup(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("processor-tls")
    authority, stranger = Authority("gateway CA"), Authority("someone else")
    ca = authority.write(directory / "ca.crt")
    processor = authority.issue(directory, "processor", dns=("processor.test",), ips=("127.0.0.1",))
    envoy = authority.issue(directory, "envoy", usages=("client",))
    rogue = stranger.issue(directory, "rogue", usages=("client",))
    (directory / "openai").write_text(OPENAI_KEY)
    address = f"127.0.0.1:{free_port()}"
    config = write_config(
        directory,
        {
            "processor": {
                "address": address,
                "message_timeout": "10s",
                "tls": {
                    "cert_file": "processor.crt",
                    "key_file": "processor.key",
                    "client_ca_file": "ca.crt",
                    "envoy_cert_file": "envoy.crt",
                    "envoy_key_file": "envoy.key",
                    "ca_file": "ca.crt",
                    "server_name": "processor.test",
                },
            },
            "providers": {
                "openai": {"kind": "openai", "base_url": mock.url, "api_key": "${file:openai}"}
            },
            "models": {"chat": {"provider": "openai", "model": "gpt-4o-mini"}},
            "keys": [{"id": "app", "sha256": sha256(GATEWAY_KEY), "models": ["*"]}],
        },
    )
    serving = Process(
        extproc("serve", "--config", str(config)), stderr_path=directory / "processor.log"
    )
    try:
        wait_until(lambda: health(config, address) == 0, "the processor did not start")
        yield Setup(config, address, ca, envoy, rogue, processor, authority, directory)
    finally:
        serving.stop()


def health(config: Path | None, address: str, *options: str) -> int:
    argv = extproc("health", "--processor", address, *options)
    if config is not None:
        argv += ["--config", str(config)]
    return subprocess.run(argv, capture_output=True, check=False, cwd=ROOT).returncode


def channel(setup: Setup, client: Issued | None, address: str | None = None) -> grpc.Channel:
    if client is None:
        credentials = grpc.ssl_channel_credentials(setup.ca.read_bytes())
    else:
        credentials = grpc.ssl_channel_credentials(
            setup.ca.read_bytes(), client.key.read_bytes(), client.cert.read_bytes()
        )
    options = [("grpc.ssl_target_name_override", "processor.test")]
    return grpc.secure_channel(address or setup.address, credentials, options=options)


def ext_proc_call(chan: grpc.Channel) -> list[ProcessingResponse]:
    """What a client speaking ext_proc itself would get for a chat call with a valid key."""
    process = chan.stream_stream(
        PROCESS,
        request_serializer=ProcessingRequest.SerializeToString,
        response_deserializer=ProcessingResponse.FromString,
    )
    requests = [
        headers(
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("authorization", f"Bearer {GATEWAY_KEY}"),
            ("content-type", "application/json"),
        ),
        body(b'{"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}'),
    ]
    return list(process(iter(requests), timeout=10))


def test_envoy_with_its_certificate_is_served(setup: Setup, mock: MockProvider) -> None:
    with envoy_only(setup.config, setup.directory, processor=setup.address) as (_, url):
        answer = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "Hi"}]},
            headers={"authorization": f"Bearer {GATEWAY_KEY}"},
            timeout=30,
        )
    assert answer.status_code == 200, answer.text
    assert health(setup.config, setup.address) == 0  # the probe proves itself as Envoy does


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_a_client_that_is_not_envoy_gets_nothing(setup: Setup, who: str) -> None:
    client = None if who == "no certificate" else setup.rogue
    with channel(setup, client) as chan:
        with pytest.raises(grpc.RpcError) as refused:
            health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # A valid gateway key does not help: no answer, so no provider key in a mutation.
        with pytest.raises(grpc.RpcError):
            ext_proc_call(chan)
    assert health(None, setup.address) != 0  # plaintext gets no further


def test_only_envoys_certificate_gets_the_provider_key(setup: Setup) -> None:
    with channel(setup, setup.envoy) as chan:
        answers = ext_proc_call(chan)
    mutation = answers[-1].request_body.response.header_mutation
    keys = [h.header.raw_value for h in mutation.set_headers if h.header.key == "authorization"]
    assert keys == [f"Bearer {OPENAI_KEY}".encode()]


def test_a_renewed_certificate_is_served_to_new_connections(setup: Setup) -> None:
    (setup.directory / "next").mkdir()
    renewed = setup.authority.issue(
        setup.directory / "next", "processor", dns=("processor.test",), ips=("127.0.0.1",)
    )
    shutil.copy(renewed.key, setup.processor.key)
    shutil.copy(renewed.cert, setup.processor.cert)
    wait_until(
        lambda: served_serial(setup) == renewed.serial,
        "the renewed certificate was not served",
        timeout=15,
    )


def served_serial(setup: Setup) -> int:
    context = ssl.create_default_context(cafile=str(setup.ca))
    context.load_cert_chain(setup.envoy.cert, setup.envoy.key)
    context.set_alpn_protocols(["h2"])
    host, port = setup.address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="processor.test") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_a_kubernetes_tls_secret_serves_and_probes(
    setup: Setup, tmp_path: Path, mock: MockProvider
) -> None:
    """`--tls-dir`: the layout cert-manager writes (tls.crt, tls.key, ca.crt); one certificate
    serves and proves the local probe, and Envoy's certificate from the same CA is served."""
    secret = tmp_path / "secret"
    secret.mkdir()
    issued = setup.authority.issue(
        tmp_path,
        "processor",
        dns=("processor.test",),
        ips=("127.0.0.1",),
        usages=("server", "client"),
    )
    shutil.copy(issued.cert, secret / "tls.crt")
    shutil.copy(issued.key, secret / "tls.key")
    shutil.copy(setup.ca, secret / "ca.crt")
    address = f"127.0.0.1:{free_port()}"
    argv = extproc("serve", "--config", str(setup.config), "--address", address)
    serving = Process([*argv, "--tls-dir", str(secret)], stderr_path=tmp_path / "processor.log")
    try:
        wait_until(
            lambda: health(None, address, "--tls-dir", str(secret)) == 0,
            "the processor did not start with --tls-dir",
        )
        assert health(None, address) != 0
        with channel(setup, setup.rogue, address) as chan, pytest.raises(grpc.RpcError):
            ext_proc_call(chan)
        with channel(setup, setup.envoy, address) as chan:
            assert ext_proc_call(chan)[-1].request_body.response.header_mutation.set_headers
    finally:
        serving.stop()
