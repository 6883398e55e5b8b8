"""Large request bodies against the processor's memory: a body in flight costs about twice its
size at its peak, whatever its shape, and several at once stay within the sizing rule the
README gives (so the manifests' limit is not where an ordinary large request ends)."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import OPENAI_KEY
from tests.harness import (
    MockProvider,
    RunningGateway,
    processor_pid,
    running_gateway,
    sha256,
    write_config,
)

pytestmark = pytest.mark.envoy

KEY = "sk-gw-faults-memory-0123456789"
SIZE = 24_000_000
PEAK_PER_BODY = 2.5
"""A body's cost at its peak, in bodies (measured: 2.0 for one image, 2.3 for a long chat)."""


@pytest.fixture(scope="module")
def gateway(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    directory = tmp_path_factory.mktemp("memory-faults")
    (directory / "openai").write_text(OPENAI_KEY)
    config = write_config(
        directory,
        {
            "listen": {"max_request_body": "32MiB"},
            "processor": {"message_timeout": "30s"},
            "providers": {
                "openai": {"kind": "openai", "base_url": mock.url, "api_key": "${file:openai}"}
            },
            "models": {"chat": {"provider": "openai", "model": "gpt-4o-mini"}},
            "keys": [{"id": "app", "sha256": sha256(KEY), "models": ["chat"]}],
        },
    )
    with running_gateway(config, directory / "gateway.log") as running:
        yield running


def image_body(size: int) -> bytes:
    data = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + data}},
    ]
    body = {"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": content}]}
    return orjson.dumps(body)


def conversation_body(size: int) -> bytes:
    turn = {"role": "user", "content": "a long conversation " * 50}
    turns = size // len(orjson.dumps(turn))
    return orjson.dumps({"model": "chat", "max_tokens": 5, "messages": [turn] * turns})


def status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


def peak_growth(gateway: RunningGateway, bodies: list[bytes]) -> int:
    """How far above its resting size the processor's memory went while these were sent."""
    pid = processor_pid(gateway)
    chat(gateway, b'{"model": "chat", "messages": [{"role": "user", "content": "warm"}]}')
    resting = status(pid, "VmRSS:")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak counts from now
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: chat(gateway, body), bodies))
    assert [answer.status_code for answer in answers] == [200] * len(bodies)
    return status(pid, "VmHWM:") - resting


def chat(gateway: RunningGateway, body: bytes) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        content=body,
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
        timeout=120,
    )


@pytest.mark.parametrize("shape", [image_body, conversation_body], ids=["image", "conversation"])
def test_a_large_body_costs_about_twice_its_size(gateway: RunningGateway, shape: Any) -> None:
    body = shape(SIZE)
    assert peak_growth(gateway, [body]) <= PEAK_PER_BODY * len(body)


@pytest.mark.heavy
def test_four_large_bodies_at_once_stay_within_the_sizing_rule(gateway: RunningGateway) -> None:
    bodies = [image_body(SIZE) for _ in range(4)]
    assert peak_growth(gateway, bodies) <= PEAK_PER_BODY * sum(map(len, bodies))
