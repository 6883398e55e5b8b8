"""The gateway as someone building their own image gets it: a wheel built from this tree as
the image builds it (its hot-path modules compiled by mypyc), installed with its dependencies
into a clean virtualenv, run outside the source tree, serving with tracing and metrics on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import GATEWAY_KEY, OPENAI_KEY
from tests.harness import ROOT, MockProvider, free_port, running_gateway, sha256, write_config
from tests.otlp_receiver import Received

pytestmark = [pytest.mark.registry, pytest.mark.envoy]

INSTALL_TIMEOUT = 900
IMAGE_SOURCES = ("pyproject.toml", "setup.py", "README.md")
OWNERS = """
import collections, importlib.metadata, json
owners = collections.defaultdict(set)
for dist in importlib.metadata.distributions():
    for file in dist.files or ():
        if file.suffix in (".py", ".pyi", ".so") and "__pycache__" not in file.parts:
            owners[str(file)].add(dist.metadata["Name"])
print(json.dumps({path: sorted(names) for path, names in owners.items() if len(names) > 1}))
"""
"""Prints every module file that more than one installed distribution wrote."""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway's wheel, built as the image builds it: from a copy of what the Dockerfile
    copies (a `build/` directory left in the tree would add stale modules), compiled, against
    the dependencies installed here (the `compile` extra is among the dev ones)."""
    directory = tmp_path_factory.mktemp("packaging")
    source = directory / "src"
    source.mkdir()
    for name in IMAGE_SOURCES:
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "extproc", source / "extproc", ignore=shutil.ignore_patterns("__pycache__", "*.so")
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-build-isolation", "--no-deps", "--wheel-dir", str(directory),
         str(source)],
        check=True,
        timeout=INSTALL_TIMEOUT,
        env={**os.environ, "EXTPROC_COMPILE": "1"},
    )  # fmt: skip
    (built,) = directory.glob("extproc_gateway-*.whl")
    return built


def test_the_wheel_and_the_image_carry_no_mock_provider(wheel: Path) -> None:
    """The fake provider (with its fake cloud credential endpoints) is a development tool."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        requires = [
            line.split(":", 1)[1].strip()
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line
        ]
    assert any(name.startswith("extproc/server.py") for name in names)
    assert any(name.startswith("extproc/server.cpython-") for name in names)
    assert not [name for name in names if "mock" in name.lower()]
    assert not [r for r in requires if r.lower().startswith("aiohttp")], requires
    # The image installs what it copies of the tree: the package, never mock-provider/.
    copied = [
        line.split()[1:-1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY") and "--from" not in line
    ]
    assert copied == [list(IMAGE_SOURCES), ["extproc"]]


@pytest.fixture(scope="module")
def installed(wheel: Path) -> Path:
    """A fresh virtualenv with the gateway's wheel and its dependencies, nothing else."""
    venv = wheel.parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin/pip", "--disable-pip-version-check", "--quiet", "install", str(wheel)],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    return venv


def test_no_two_installed_distributions_write_the_same_module(installed: Path) -> None:
    shared = subprocess.run(
        [installed / "bin/python", "-c", OWNERS], check=True, capture_output=True, text=True
    )
    assert json.loads(shared.stdout) == {}
    check = subprocess.run(
        [installed / "bin/pip", "check"], check=False, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout


def test_installed_gateway_serves_with_tracing_and_metrics(
    installed: Path, mock: MockProvider, receiver: tuple[str, Received], tmp_path: Path
) -> None:
    endpoint, received = receiver
    metrics_port = free_port()
    (tmp_path / "openai").write_text(OPENAI_KEY)
    config = write_config(
        tmp_path,
        {
            "providers": {
                "openai": {"kind": "openai", "base_url": mock.url, "api_key": "${file:openai}"}
            },
            "models": {"chat": {"provider": "openai", "model": "gpt-4o-mini"}},
            "keys": [{"id": "full", "sha256": sha256(GATEWAY_KEY), "models": ["*"]}],
            "telemetry": {
                "tracing": {"enabled": True, "endpoint": endpoint},
                "metrics": {"prometheus_port": metrics_port},
            },
        },
    )
    program = (str(installed / "bin/extproc"),)
    with running_gateway(config, tmp_path / "gateway.log", program=program) as gateway:
        answer = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "Hi"}]},
            headers={"authorization": f"Bearer {GATEWAY_KEY}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["total_tokens"] > 0
        span = received.wait_for_span("chat gpt-4o-mini", timeout=30)
        assert span["attributes"]["gen_ai.usage.input_tokens"] > 0
        # The request's metrics are recorded where its span ends, before that span is exported.
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert "extproc_requests_total{" in metrics and "gen_ai_client_token_usage" in metrics
    # The image's processor runs the modules compiled into the wheel.
    assert "(compiled)" in (tmp_path / "gateway.log").read_text()


def test_the_installed_gateway_says_the_mock_is_a_development_tool(
    installed: Path, tmp_path: Path
) -> None:
    (tmp_path / "openai").write_text(OPENAI_KEY)
    config = write_config(
        tmp_path,
        {
            "providers": {
                "openai": {
                    "kind": "openai",
                    "base_url": "http://127.0.0.1:1",
                    "api_key": "${file:openai}",
                }
            },
            "models": {"chat": {"provider": "openai", "model": "gpt-4o-mini"}},
            "keys": [{"id": "full", "sha256": sha256(GATEWAY_KEY), "models": ["*"]}],
        },
    )
    command = [installed / "bin/extproc", "run", "--config", config, "--mock-provider", "0"]
    started = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert started.returncode == 1
    assert "the mock provider is not installed" in started.stderr
