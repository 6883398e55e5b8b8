"""Hot reload: keys and models follow the file; bad files and provider changes do not apply."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from extproc.config import load_gateway, watcher
from extproc.config.watcher import GatewaySource
from extproc.pipeline.auth import digest_key

BASE = """
providers:
  up: {{kind: openai, base_url: "http://127.0.0.1:9"}}
models:
  m: {{provider: up, model: upstream-m}}
keys:
{keys}
"""


def write(path: Path, *key_names: str, base: str = BASE) -> None:
    keys = "".join(
        f"  - {{id: {name}, sha256: {digest_key(name)}, models: [m]}}\n" for name in key_names
    )
    path.write_text(base.format(keys=keys))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    write(path, "sk-old")
    return path


def test_new_and_revoked_keys_take_effect(config: Path) -> None:
    source = GatewaySource(load_gateway(config))
    assert source.reload_if_changed() is False, "nothing changed yet"

    write(config, "sk-new-key")

    assert source.reload_if_changed() is True
    assert set(source.current.principals) == {digest_key("sk-new-key")}


def test_an_invalid_file_keeps_the_previous_configuration(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = GatewaySource(load_gateway(config))
    before = source.current

    config.write_text(config.read_text().replace("kind: openai", "kind: nope"))

    assert source.reload_if_changed() is False
    assert source.current is before
    assert "providers.up.kind" in caplog.text


@pytest.mark.parametrize(
    "change",
    [
        ("127.0.0.1:9", "127.0.0.1:10"),  # another address: Envoy's cluster changes
        ("base_url:", "timeout: 5s, base_url:"),
        ("\nmodels:", "\n  more: {{kind: openai, base_url: 'http://127.0.0.1:9'}}\nmodels:"),
        ("model: upstream-m}}", "model: upstream-m, retry: {{attempts: 2}}}}"),  # fallback
    ],
)
def test_changes_to_how_envoy_reaches_a_provider_need_a_restart(
    config: Path, caplog: pytest.LogCaptureFixture, change: tuple[str, str]
) -> None:
    source = GatewaySource(load_gateway(config))
    before = source.current

    write(config, "sk-old", base=BASE.replace(*change))

    assert source.reload_if_changed() is False
    assert source.current is before
    assert "re-render Envoy" in caplog.text


def test_provider_settings_only_the_processor_reads_apply_live(config: Path) -> None:
    source = GatewaySource(load_gateway(config))
    live = BASE.replace(
        '{kind: openai, base_url: "http://127.0.0.1:9"}',
        '{kind: azure, base_url: "http://127.0.0.1:9/openai", api_version: 2024-10-21,'
        " stream_usage: false}",
    )

    write(config, "sk-old", base=live)

    assert source.reload_if_changed() is True
    provider = source.current.providers["up"]
    assert (provider.kind, provider.base_path, provider.api_version, provider.stream_usage) == (
        "azure",
        "/openai",
        "2024-10-21",
        False,
    )


async def test_a_failing_check_is_logged_and_following_goes_on(
    config: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = GatewaySource(load_gateway(config))
    monkeypatch.setattr("extproc.config.watcher.POLL_SECONDS", 0.001)
    checks = 0
    applied = asyncio.Event()

    def stamp_fails_once(path: Path) -> tuple[int, int, int] | None:  # a bug, injected
        nonlocal checks
        checks += 1
        if checks == 1:
            raise RuntimeError("a bug in one check")
        if source.reloads["applied"]:
            applied.set()
        return real_stamp(path)

    real_stamp = watcher._stamp
    monkeypatch.setattr("extproc.config.watcher._stamp", stamp_fails_once)
    following = asyncio.create_task(source.follow())
    write(config, "sk-new-key")

    try:
        await asyncio.wait_for(applied.wait(), 5)
    finally:
        following.cancel()
    assert "still following" in caplog.text
    assert set(source.current.principals) == {digest_key("sk-new-key")}
