"""What coding agents call beside chat, through the real Envoy and processor: Anthropic's
`count_tokens` (Claude Code calls it every turn) counted by the provider where it counts
natively and estimated by the gateway elsewhere, never charged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from extproc.usage import estimate_tokens
from tests.conftest import provider_document, write_provider_keys
from tests.harness import (
    MockProvider,
    RunningGateway,
    counter_used,
    running_gateway,
    sha256,
    write_config,
)

pytestmark = pytest.mark.envoy

KEY = "sk-gw-agents-0123456789"
ONE_REQUEST_KEY = "sk-gw-agents-one-request-0123456789"
NARROW_KEY = "sk-gw-agents-narrow-0123456789"
PRICE = {"input_per_million": 3.0, "output_per_million": 15.0}
MESSAGES = [{"role": "user", "content": "How many tokens is this question?"}]
SYSTEM = "You are a coding agent."


@pytest.fixture(scope="module")
def config(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("agents")
    write_provider_keys(directory)
    models = {
        "oa": {"provider": "openai", "model": "gpt-4o-2024-08-06"},
        "an": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
        "ge": {"provider": "gemini", "model": "gemini-2.5-flash"},
    }
    document = {
        "providers": provider_document(mock.url, directory),
        "models": models,
        "prices": dict.fromkeys(models, PRICE),
        "keys": [
            {
                "id": "app",
                "sha256": sha256(KEY),
                "models": ["*"],
                "limits": [{"tokens": 10**9, "per": "1d"}, {"requests": 10**6, "per": "1d"}],
            },
            {
                "id": "one-request",
                "sha256": sha256(ONE_REQUEST_KEY),
                "models": ["*"],
                "limits": [{"requests": 1, "per": "1d"}, {"tokens": 100, "per": "1d"}],
            },
            {"id": "narrow", "sha256": sha256(NARROW_KEY), "models": ["oa"]},
        ],
        "telemetry": {"access_log": str(directory / "access.log")},
    }
    return write_config(directory, document)


@pytest.fixture(scope="module")
def gateway(config: Path) -> Iterator[RunningGateway]:
    with running_gateway(config, config.parent / "gateway.log") as running:
        yield running


def anthropic_sdk(gateway: RunningGateway, key: str = KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


def test_anthropic_counts_tokens_itself_and_its_count_matches_the_call(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    with anthropic_sdk(gateway) as sdk:
        mock.clear()
        counted = sdk.messages.with_raw_response.count_tokens(
            model="an", system=SYSTEM, messages=MESSAGES
        )
        upstream = mock.last_request()
        message = sdk.messages.create(model="an", max_tokens=50, system=SYSTEM, messages=MESSAGES)

    assert counted.headers["x-extproc-token-count"] == "provider"
    assert upstream["path"] == "/v1/messages/count_tokens"
    assert "x-api-key" in upstream["headers"] and "anthropic-version" in upstream["headers"]
    assert upstream["body"]["model"] == "claude-sonnet-4-5"
    assert KEY not in str(upstream["headers"])
    assert counted.parse().input_tokens == message.usage.input_tokens


@pytest.mark.parametrize("alias", ["oa", "ge"])
def test_other_providers_get_the_gateways_estimate_and_nothing_goes_upstream(
    alias: str, gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    with anthropic_sdk(gateway) as sdk:
        counted = sdk.messages.with_raw_response.count_tokens(
            model=alias, system=SYSTEM, messages=MESSAGES
        )

    assert counted.headers["x-extproc-token-count"] == "estimate"
    tokens = counted.parse().input_tokens
    assert tokens == estimate_tokens([SYSTEM, MESSAGES]), "the estimate quotas reserve"
    assert mock.requests() == []


def test_counting_is_free_even_with_the_quota_spent(gateway: RunningGateway, config: Path) -> None:
    with anthropic_sdk(gateway, ONE_REQUEST_KEY) as sdk:
        for alias in ("an", "oa", "an"):
            sdk.messages.count_tokens(model=alias, messages=MESSAGES)
        assert counter_used(config, "one-request", "requests", processor=gateway.processor) == 0
        sdk.messages.create(model="an", max_tokens=5, messages=MESSAGES)
        with pytest.raises(anthropic.RateLimitError):
            sdk.messages.create(model="an", max_tokens=5, messages=MESSAGES)
        assert sdk.messages.count_tokens(model="an", messages=MESSAGES).input_tokens > 0


def test_a_count_needs_a_key_that_may_use_the_alias_and_a_valid_body(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    with anthropic_sdk(gateway, NARROW_KEY) as sdk, pytest.raises(anthropic.PermissionDeniedError):
        sdk.messages.count_tokens(model="an", messages=MESSAGES)
    unknown = anthropic_sdk(gateway, "sk-gw-unknown")
    with unknown, pytest.raises(anthropic.AuthenticationError):
        unknown.messages.count_tokens(model="an", messages=MESSAGES)
    with anthropic_sdk(gateway) as sdk:
        with pytest.raises(anthropic.BadRequestError) as raised:
            sdk.messages.count_tokens(model="an", messages=MESSAGES, extra_body={"max_tokens": 10})
        assert raised.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        with pytest.raises(anthropic.BadRequestError):
            sdk.messages.count_tokens(model="an", messages=[])
    assert mock.requests() == []
