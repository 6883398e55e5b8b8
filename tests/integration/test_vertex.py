"""Google Cloud Vertex AI through the real Envoy and processor: Gemini and Claude on Vertex
for OpenAI and Anthropic clients, with access tokens from a service-account key file
(Application Default Credentials) traded at the mock's token endpoint, which alone issues the
tokens the mock's Vertex accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mockprovider.script import REPLY
from mockprovider.script import estimate_tokens as provider_estimate

from tests.harness import (
    MockProvider,
    RunningGateway,
    access_log_lines,
    logged_since,
    running_gateway,
    sha256,
    write_config,
)
from tests.integration.test_provider_headers import CLIENT_HEADERS, ENVOYS, GATEWAYS

pytestmark = pytest.mark.envoy

KEY = "sk-gw-vertex-0123456789"
PREFIX = "/v1/projects/llm-prod/locations/us-central1/publishers"
REPLY_WORDS = len(REPLY.split())


@pytest.fixture(scope="module")
def service_account(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path_factory.mktemp("gcp") / "service-account.json"
    account = {
        "type": "service_account",
        "project_id": "llm-prod",
        "private_key_id": "mock-key-1",
        "private_key": pem,
        "client_email": "gateway@llm-prod.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": mock.url + "/token",
    }
    path.write_text(json.dumps(account))
    return path


@pytest.fixture(scope="module")
def config(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("vertex")
    vertex = {"kind": "vertex", "project": "llm-prod", "location": "us-central1"}
    document = {
        "providers": {
            "vertex-gemini": vertex | {"base_url": mock.url},
            "vertex-claude": vertex | {"base_url": mock.url, "publisher": "anthropic"},
        },
        "models": {
            "ge": {"provider": "vertex-gemini", "model": "gemini-2.5-flash"},
            "cl": {"provider": "vertex-claude", "model": "claude-sonnet-4-5@20250929"},
        },
        "prices": {
            alias: {"input_per_million": 1, "output_per_million": 2} for alias in ("ge", "cl")
        },
        "keys": [{"id": "app", "sha256": sha256(KEY), "models": ["*"]}],
        "telemetry": {"access_log": str(directory / "access.log")},
    }
    return write_config(directory, document)


@pytest.fixture(scope="module")
def gateway(config: Path, service_account: Path) -> Iterator[RunningGateway]:
    env = {
        "GOOGLE_APPLICATION_CREDENTIALS": str(service_account),
        "GCE_METADATA_HOST": "127.0.0.1:9",
    }
    with running_gateway(config, config.parent / "gateway.log", env=env) as running:
        yield running


def upstream_input(request: dict[str, object]) -> int:
    body = request["body"]
    assert isinstance(body, dict)
    if "contents" in body:
        return provider_estimate(body["contents"])
    return provider_estimate(body["messages"])


@pytest.mark.parametrize(
    ("alias", "method"),
    [
        ("ge", "google/models/gemini-2.5-flash"),
        ("cl", "anthropic/models/claude-sonnet-4-5@20250929"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_openai_clients_reach_vertex_with_a_token_and_exact_usage(  # noqa: PLR0917
    alias: str,
    method: str,
    streamed: bool,
    gateway: RunningGateway,
    mock: MockProvider,
    config: Path,
) -> None:
    before = len(access_log_lines(config))
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        if streamed:
            chunks = list(
                sdk.chat.completions.create(
                    model=alias,
                    messages=[{"role": "user", "content": "Hi"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            usage = chunks[-1].usage
        else:
            completion = sdk.chat.completions.create(
                model=alias, messages=[{"role": "user", "content": "Hi"}]
            )
            text, usage = completion.choices[0].message.content or "", completion.usage

    upstream = mock.last_request()
    assert upstream["path"].startswith(f"{PREFIX}/{method}:")
    assert upstream["headers"]["authorization"].startswith("sha256:")
    assert text == REPLY
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (upstream_input(upstream), REPLY_WORDS)
    line = logged_since(config, before, alias)
    assert (line["input_tokens"], line["output_tokens"]) == (usage.prompt_tokens, REPLY_WORDS)


def test_claude_on_vertex_takes_anthropic_clients_as_they_are(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0) as sdk:
        message = sdk.messages.create(
            model="cl", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
        )

    body = mock.last_request()["body"]
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body
    assert message.content[0].type == "text" and message.content[0].text == REPLY


def test_the_token_comes_from_the_service_account_and_never_leaks(
    gateway: RunningGateway, mock: MockProvider, service_account: Path
) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        sdk.chat.completions.create(model="ge", messages=[{"role": "user", "content": "Hi"}])

    exchanges = [r for r in mock.requests() if r["path"] == "/token"]
    assert exchanges, "a token was obtained with the service account's signed JWT"
    for exchange in exchanges:
        assert exchange["body"]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        assert exchange["body"]["assertion"].startswith("sha256:")
    private_key = json.loads(service_account.read_text())["private_key"].splitlines()[1]
    assert private_key not in gateway.log_path.read_text()


def test_vertex_gets_only_what_it_needs(gateway: RunningGateway, mock: MockProvider) -> None:
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0) as sdk:
        sdk.messages.create(
            model="cl",
            max_tokens=20,
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers=CLIENT_HEADERS,
        )
    # Claude on Vertex takes Anthropic's body, but not Anthropic's headers (its betas included).
    assert set(mock.last_request()["headers"]) <= ENVOYS | GATEWAYS | {"authorization"}
