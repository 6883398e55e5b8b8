"""Amazon Bedrock through the real Envoy and processor: OpenAI and Anthropic clients on an
alias served by Converse, every request signed with SigV4 from the AWS credential chain and
checked by the mock as AWS checks it, streams read from binary event-stream frames."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from mockprovider.bedrock import TEST_CREDENTIALS
from mockprovider.script import REPLY
from mockprovider.script import estimate_tokens as provider_estimate

from tests.conftest import PROVIDER_KEYS, provider_document, write_provider_keys
from tests.harness import (
    MockProvider,
    RunningGateway,
    access_log_lines,
    extproc,
    logged_since,
    running_gateway,
    sha256,
    write_config,
)
from tests.integration.test_provider_headers import CLIENT_HEADERS, ENVOYS, GATEWAYS

pytestmark = pytest.mark.envoy

KEY = "sk-gw-bedrock-0123456789"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
[(ACCESS_KEY, SECRET_KEY)] = TEST_CREDENTIALS.items()
SESSION_TOKEN = "mock-session-token-of-a-role"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_SESSION_TOKEN": SESSION_TOKEN,
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}
REPLY_WORDS = len(REPLY.split())
WEATHER = {
    "name": "get_weather",
    "description": "The weather now",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def config(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bedrock")
    write_provider_keys(directory)
    document = {
        "providers": {
            "bedrock": {"kind": "bedrock", "region": "us-east-1", "base_url": mock.url},
            "openai": provider_document(mock.url, directory)["openai"],
        },
        "models": {
            "claude": {"provider": "bedrock", "model": MODEL, "max_output_tokens": 512},
            "titan": {"provider": "bedrock", "model": "amazon.titan-embed-text-v2:0"},
            "cohere": {"provider": "bedrock", "model": "cohere.embed-english-v3"},
            "resilient": {
                "targets": [
                    {"provider": "openai", "model": "gpt-4o"},
                    {"provider": "bedrock", "model": MODEL, "priority": 1},
                ]
            },
        },
        "prices": {
            alias: {"input_per_million": 3.0, "output_per_million": 15.0}
            for alias in ("claude", "titan", "cohere", "resilient")
        },
        "keys": [{"id": "app", "sha256": sha256(KEY), "models": ["*"]}],
        "telemetry": {"access_log": str(directory / "access.log")},
    }
    return write_config(directory, document)


@pytest.fixture(scope="module")
def gateway(config: Path) -> Iterator[RunningGateway]:
    with running_gateway(config, config.parent / "gateway.log", env=AWS_ENV) as running:
        yield running


def converse_input(request: dict[str, object]) -> int:
    body = request["body"]
    assert isinstance(body, dict)
    return provider_estimate(body["messages"]) + provider_estimate(body.get("system") or [])


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_openai_clients_reach_bedrock_signed_with_exact_usage(
    streamed: bool, gateway: RunningGateway, mock: MockProvider, config: Path
) -> None:
    before = len(access_log_lines(config))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        if streamed:
            chunks = list(
                sdk.chat.completions.create(
                    model="claude",
                    messages=messages,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            usage = chunks[-1].usage
        else:
            completion = sdk.chat.completions.create(model="claude", messages=messages)  # type: ignore[arg-type]
            text, usage = completion.choices[0].message.content or "", completion.usage

    upstream = mock.last_request()
    method = "converse-stream" if streamed else "converse"
    assert upstream["path"] == f"/model/{MODEL}/{method}"
    assert upstream["headers"]["authorization"].startswith("sha256:"), "signed, never logged"
    assert "x-amz-date" in upstream["headers"]
    assert text == REPLY
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (converse_input(upstream), REPLY_WORDS)
    line = logged_since(config, before, "claude")
    assert (line["provider"], line["model"]) == ("bedrock", MODEL)
    assert (line["input_tokens"], line["output_tokens"]) == (usage.prompt_tokens, REPLY_WORDS)


def test_anthropic_clients_stream_a_tool_call_from_bedrock(gateway: RunningGateway) -> None:
    call = json.dumps([{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
    with (
        sdk,
        sdk.messages.stream(
            model="claude",
            max_tokens=100,
            tools=[WEATHER],  # type: ignore[list-item]
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            extra_headers={"x-mock-tool-calls": call},
        ) as stream,
    ):
        message = stream.get_final_message()

    assert message.stop_reason == "tool_use"
    [use] = [block for block in message.content if block.type == "tool_use"]
    assert (use.name, use.input) == ("get_weather", {"city": "Oslo"})


def test_aws_credentials_never_leave_the_processor(
    gateway: RunningGateway, mock: MockProvider, config: Path
) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        response = sdk.chat.completions.with_raw_response.create(
            model="claude", messages=[{"role": "user", "content": "Hi"}]
        )

    seen = "\n".join(
        [
            str(dict(response.headers)),
            response.text,
            gateway.log_path.read_text(),
            "\n".join(access_log_lines(config)),
            json.dumps(mock.last_request()),
        ]
    )
    for secret in (SECRET_KEY, SESSION_TOKEN):
        assert secret not in seen


def test_credentials_from_a_web_identity_token_file_as_on_eks(
    mock: MockProvider, config: Path, tmp_path: Path
) -> None:
    """IRSA: no AWS key anywhere, only a service account token file and a role; the gateway
    trades the token at STS (the mock's, as AWS_ENDPOINT_URL_STS points it) for temporary
    credentials and signs with them."""
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.service-account-token.signature")
    irsa = {
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/llm-gateway",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
        "AWS_ENDPOINT_URL_STS": mock.url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
    }
    mock.clear()
    log = tmp_path / "gateway.log"
    with running_gateway(config, log, env=AWS_ENV | irsa) as gateway:
        sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
        with sdk:
            completion = sdk.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "Hi"}]
            )

    assert completion.choices[0].message.content == REPLY
    *exchanges, converse = mock.requests()
    assert exchanges, "the token was exchanged at STS"
    for sts in exchanges:  # once by each process that loads the configuration
        assert sts["body"]["Action"] == "AssumeRoleWithWebIdentity"
        assert sts["body"]["RoleArn"] == irsa["AWS_ROLE_ARN"]
        assert sts["body"]["WebIdentityToken"].startswith("sha256:")
    assert converse["path"] == f"/model/{MODEL}/converse"
    assert "x-amz-security-token" in converse["headers"], "temporary credentials sign it"


def test_envoy_configuration_holds_no_aws_credentials(config: Path) -> None:
    """What Envoy is given (and its /config_dump shows) is rendered without them."""
    rendered = subprocess.run(
        extproc("envoy-config", "--config", str(config)),
        capture_output=True,
        check=True,
        env=os.environ | AWS_ENV,
        timeout=120,
    ).stdout.decode()

    assert "provider_bedrock" in rendered
    for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN):
        assert secret not in rendered


def test_a_corrupted_frame_ends_the_clients_stream_with_an_error_event(
    gateway: RunningGateway,
) -> None:
    text = ""
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        stream = sdk.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            extra_headers={"x-mock-corrupt-frame": "3"},
        )
        with pytest.raises(openai.APIError) as raised:
            for chunk in stream:
                text += chunk.choices[0].delta.content or "" if chunk.choices else ""

    assert "corrupted" in raised.value.message
    assert text == "Hello from ", "what came before the corrupted frame, and nothing after"


def test_embeddings_through_invoke_model_for_titan_and_cohere(
    gateway: RunningGateway, mock: MockProvider, config: Path
) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        before = len(access_log_lines(config))
        titan = sdk.embeddings.create(model="titan", input="A text to embed", dimensions=256)
        titan_request = mock.last_request()
        line = logged_since(config, before, "titan")
        cohere = sdk.embeddings.create(model="cohere", input=["one", "two"])
        cohere_request = mock.last_request()
        with pytest.raises(openai.BadRequestError) as batch:
            sdk.embeddings.create(model="titan", input=["one", "two"])

    assert titan_request["path"] == "/model/amazon.titan-embed-text-v2:0/invoke"
    assert titan_request["body"] == {"inputText": "A text to embed", "dimensions": 256}
    assert len(titan.data[0].embedding) == 256
    assert titan.usage.prompt_tokens == provider_estimate("A text to embed")
    assert (line["input_tokens"], line["output_tokens"]) == (titan.usage.prompt_tokens, 0)
    assert cohere_request["body"]["texts"] == ["one", "two"]
    assert [item.index for item in cohere.data] == [0, 1]
    assert batch.value.param == "input"


def test_debug_logging_shows_no_aws_credential(
    mock: MockProvider, config: Path, tmp_path: Path
) -> None:
    """botocore logs every canonical request (the session token in it) at debug level: the
    gateway keeps that library at warnings even when it logs debug itself."""
    log = tmp_path / "gateway.log"
    with running_gateway(config, log, env=AWS_ENV | {"EXTPROC_LOG_LEVEL": "debug"}) as gateway:
        sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
        with sdk:
            sdk.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "Hi"}]
            )
        text = log.read_text()

    assert "DEBUG" in text, "the gateway did log at debug level"
    for secret in (SECRET_KEY, SESSION_TOKEN):
        assert secret not in text


def test_a_fallback_attempt_to_bedrock_is_signed_for_itself(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    """OpenAI throttles; Envoy's next attempt goes to Bedrock, prepared and signed by the
    attempt's own filter, and carries nothing of OpenAI's key."""
    mock.clear()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        completion = sdk.chat.completions.create(
            model="resilient",
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"x-mock-fail": "gpt-4o=429"},
        )

    throttled, answered = mock.requests()
    assert throttled["path"] == "/v1/chat/completions"
    assert answered["path"] == f"/model/{MODEL}/converse", "the mock checked its signature"
    assert "x-amz-date" in answered["headers"]
    openai_bearer = sha256_digest(f"Bearer {PROVIDER_KEYS['openai']}")
    assert answered["headers"]["authorization"] != openai_bearer
    assert completion.choices[0].message.content == REPLY


def sha256_digest(value: str) -> str:
    """How the mock records a credential header."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def test_bedrock_gets_only_what_it_needs(gateway: RunningGateway, mock: MockProvider) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        sdk.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers=CLIENT_HEADERS,
        )
    signing = {"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}
    assert set(mock.last_request()["headers"]) <= ENVOYS | GATEWAYS | signing
