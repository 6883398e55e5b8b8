"""The official openai SDK against the gateway: what works, and the exception for each error."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import GATEWAY_KEY, LIMITED_KEY, OPENAI_KEY
from tests.harness import MockProvider, RunningGateway, sha256

pytestmark = pytest.mark.envoy


def client(gateway: RunningGateway, key: str = GATEWAY_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def shared_sdk(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with client(gateway) as instance:
        yield instance


@pytest.fixture
def sdk(shared_sdk: openai.OpenAI, mock: MockProvider) -> openai.OpenAI:
    mock.clear()
    return shared_sdk


def test_chat_completion_reaches_the_provider_with_its_key_and_model(
    sdk: openai.OpenAI, mock: MockProvider
) -> None:
    completion = sdk.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello"}]
    )

    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.total_tokens > 0
    upstream = mock.last_request()
    assert upstream["path"] == "/v1/chat/completions"
    assert upstream["headers"]["authorization"] == "sha256:" + sha256(f"Bearer {OPENAI_KEY}")
    assert upstream["body"]["model"] == "gpt-4o-2024-08-06"
    assert upstream["body"]["max_tokens"] == 64, "forced option applied"
    assert upstream["body"]["messages"] == [{"role": "user", "content": "Hello"}]


def test_embeddings(sdk: openai.OpenAI, mock: MockProvider) -> None:
    result = sdk.embeddings.create(model="embed", input=["one", "two"])

    assert [item.index for item in result.data] == [0, 1]
    assert len(result.data[0].embedding) > 0
    assert mock.last_request()["body"]["model"] == "text-embedding-3-small"


def test_legacy_completions(sdk: openai.OpenAI, mock: MockProvider) -> None:
    result = sdk.completions.create(model="gpt-4o", prompt="Say hi")

    assert result.choices[0].text
    assert mock.last_request()["path"] == "/v1/completions"


def test_models_lists_exactly_what_the_key_may_use(gateway: RunningGateway) -> None:
    with client(gateway) as full, client(gateway, LIMITED_KEY) as limited:
        assert {model.id for model in full.models.list()} == {
            "gpt-4o",
            "azure-gpt",
            "claude",
            "gemini",
            "gemini-embed",
            "embed",
            "split",
        }
        assert {model.id for model in limited.models.list()} == {"gpt-4o", "embed"}
        assert limited.models.retrieve("embed").id == "embed"
        with pytest.raises(openai.NotFoundError):
            limited.models.retrieve("claude")


def test_azure_provider_gets_deployment_path_and_api_key_header(
    sdk: openai.OpenAI, mock: MockProvider
) -> None:
    sdk.chat.completions.create(model="azure-gpt", messages=[{"role": "user", "content": "x"}])

    upstream = mock.last_request()
    assert upstream["path"] == "/azure/openai/deployments/my-deployment/chat/completions"
    assert upstream["query"] == "api-version=2024-10-21"
    assert upstream["headers"]["api-key"].startswith("sha256:")
    assert "authorization" not in upstream["headers"]


@pytest.mark.parametrize("key", ["sk-gw-not-a-key-we-issued", GATEWAY_KEY + "x"])
def test_bad_keys_raise_authentication_error(
    gateway: RunningGateway, mock: MockProvider, key: str
) -> None:
    mock.clear()
    with client(gateway, key) as sdk, pytest.raises(openai.AuthenticationError) as raised:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])

    assert raised.value.code == "invalid_api_key"  # type: ignore[attr-defined]
    assert mock.requests() == [], "nothing reached the provider"


def test_unknown_model_raises_not_found(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])

    assert raised.value.code == "model_not_found"


def test_model_outside_the_key_raises_permission_denied(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    with client(gateway, LIMITED_KEY) as sdk, pytest.raises(openai.PermissionDeniedError) as raised:
        sdk.chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}])

    assert raised.value.code == "model_not_allowed"
    assert mock.requests() == []


def test_missing_messages_raises_bad_request(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model="gpt-4o", messages=[])

    assert raised.value.param == "messages"


def test_provider_errors_reach_the_client_as_openai_errors(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-status": "429"},
        )


def test_streams_work_for_keys_without_limits(sdk: openai.OpenAI, mock: MockProvider) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Hello"}],
            stream=True,
            extra_headers={"x-mock-words": "300"},
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert len(text.split()) == 64, "the forced max_tokens of 64, all streamed"
    assert all(chunk.usage is None for chunk in chunks)
    assert mock.last_request()["stream"]["completed"]
