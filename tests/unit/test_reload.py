"""Hot reload: keys and models follow the file; bad files and provider changes do not apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.config import load_gateway
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


def test_provider_changes_need_a_restart(config: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = GatewaySource(load_gateway(config))

    write(config, "sk-old", base=BASE.replace("127.0.0.1:9", "127.0.0.1:10"))

    assert source.reload_if_changed() is False
    assert "re-render Envoy" in caplog.text
