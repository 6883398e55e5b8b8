"""Shared fixtures: one mock provider and one gateway for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc.compiled import MODULES
from tests.harness import (
    ROOT,
    MockProvider,
    RunningGateway,
    gateway_yaml,
    mock_provider,
    running_gateway,
    sha256,
)
from tests.otlp_receiver import Received, otlp_receiver


def pytest_configure(config: pytest.Config) -> None:
    """Modules edited since they were compiled would be shadowed by their old build (Python
    imports an extension before the `.py` beside it): the tests would run yesterday's code."""
    for native in (ROOT / "extproc").glob("native__mypyc.*.so"):
        built = native.stat().st_mtime
        edited = [
            module
            for module in MODULES
            if (ROOT / (module.replace(".", "/") + ".py")).stat().st_mtime > built
        ]
        if edited:
            raise pytest.UsageError(f"edited since compiled: {edited}; run make compile")


GATEWAY_KEY = "sk-gw-test-full-access-0123456789"
LIMITED_KEY = "sk-gw-test-limited-0123456789"
OPENAI_KEY = "sk-provider-openai-secret-value"
AZURE_KEY = "azure-provider-secret-value"
ANTHROPIC_KEY = "sk-ant-provider-secret-value"
GEMINI_KEY = "AIza-provider-gemini-secret-value"
PROVIDER_KEYS = {
    "openai": OPENAI_KEY,
    "azure": AZURE_KEY,
    "anthropic": ANTHROPIC_KEY,
    "gemini": GEMINI_KEY,
}
ALL_SECRETS = (GATEWAY_KEY, LIMITED_KEY, *PROVIDER_KEYS.values())


def write_provider_keys(secrets_dir: Path) -> tuple[Path, ...]:
    """One file per provider key (what the gateway references and the mock accepts)."""
    for name, value in PROVIDER_KEYS.items():
        (secrets_dir / name).write_text(value + "\n")
    return tuple(secrets_dir / name for name in PROVIDER_KEYS)


def provider_document(mock_url: str, secrets_dir: Path) -> dict[str, Any]:
    """One provider of each kind, all served by the mock, keys from `secrets_dir`."""
    return {
        "openai": {
            "kind": "openai",
            "base_url": mock_url,
            "api_key": f"${{file:{secrets_dir}/openai}}",
        },
        "azure": {
            "kind": "azure",
            "base_url": mock_url + "/azure",
            "api_key": f"${{file:{secrets_dir}/azure}}",
            "api_version": "2024-10-21",
        },
        "anthropic": {
            "kind": "anthropic",
            "base_url": mock_url,
            "api_key": f"${{file:{secrets_dir}/anthropic}}",
        },
        "gemini": {
            "kind": "gemini",
            "base_url": mock_url,
            "api_key": f"${{file:{secrets_dir}/gemini}}",
        },
    }


CHAT_MODELS = {
    "chat": {"provider": "openai", "model": "gpt-4o-mini"},
    "big": {"provider": "openai", "model": "gpt-4o"},
}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}


def chat_config(directory: Path, mock_url: str, document: dict[str, Any]) -> Path:
    """A configuration in `directory`: the OpenAI-kind provider on the mock, the aliases
    `chat` and `big`, an access log beside it, and `document`'s sections."""
    secrets_dir = directory / "secrets"
    secrets_dir.mkdir(exist_ok=True)
    write_provider_keys(secrets_dir)
    base = {
        "processor": {"message_timeout": "10s"},
        "providers": {"openai": provider_document(mock_url, secrets_dir)["openai"]},
        "models": CHAT_MODELS,
        "telemetry": {"access_log": str(directory / "access.log")},
    }
    path = directory / "gateway.yaml"
    path.write_text(gateway_yaml(base | document))
    return path


def gateway_document(mock_url: str, secrets_dir: Path) -> dict[str, object]:
    """The test configuration: one provider of each kind, all served by the mock."""
    write_provider_keys(secrets_dir)
    return {
        "version": 1,
        "listen": {"port": 10000, "max_request_body": "4MiB"},
        # Shared test machines pause processes for a second or more now and then.
        "processor": {"message_timeout": "10s"},
        "providers": provider_document(mock_url, secrets_dir),
        "models": {
            "gpt-4o": {
                "provider": "openai",
                "model": "gpt-4o-2024-08-06",
                "options": {"max_tokens": 64},
            },
            "azure-gpt": {"provider": "azure", "model": "my-deployment"},
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
            "gemini": {"provider": "gemini", "model": "gemini-2.5-flash"},
            "gemini-embed": {"provider": "gemini", "model": "gemini-embedding-001"},
            "embed": {"provider": "openai", "model": "text-embedding-3-small"},
            "split": {
                "targets": [
                    {"provider": "openai", "model": "upstream-a", "weight": 3},
                    {"provider": "openai", "model": "upstream-b", "weight": 1},
                ]
            },
        },
        "keys": [
            {"id": "full", "sha256": sha256(GATEWAY_KEY), "team": "core", "models": ["*"]},
            {"id": "limited", "sha256": sha256(LIMITED_KEY), "models": ["gpt-4o", "embed"]},
        ],
    }


@pytest.fixture(scope="session")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockProvider]:
    """The mock provider, accepting only the test provider keys."""
    with mock_provider(write_provider_keys(tmp_path_factory.mktemp("mock-keys"))) as provider:
        yield provider


@pytest.fixture(scope="session")
def gateway_config(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("gateway")
    secrets_dir = directory / "secrets"
    secrets_dir.mkdir()
    path = directory / "gateway.yaml"
    path.write_text(gateway_yaml(gateway_document(mock.url, secrets_dir)))
    return path


@pytest.fixture(scope="session")
def gateway(gateway_config: Path) -> Iterator[RunningGateway]:
    with running_gateway(gateway_config, gateway_config.parent / "gateway.log") as running:
        yield running


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, Received]]:
    """An OTLP receiver for the module's gateway: (its endpoint, what it received)."""
    with otlp_receiver() as running:
        yield running
