"""Keys with a lifecycle, through Envoy and the processor as users run them: issued and revoked
by adding and removing a file (a mounted Secret) on two gateways at once, rotated under load
with no failed call, refused with `key_expired` after the grace period, and flagged before."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.conftest import CHAT, chat_config
from tests.harness import (
    ROOT,
    MockProvider,
    RunningGateway,
    assert_openai_error,
    extproc,
    running_gateway,
    sha256,
    wait_until,
)

pytestmark = pytest.mark.envoy

REVOCATION_BOUND = 2.0
"""Seconds from a key file's removal to its key's refusal on every gateway (README)."""


def configuration(directory: Path, mock: MockProvider, keys: list[dict[str, object]]) -> Path:
    return chat_config(directory, mock.url, {"key_files": "keys.d", "keys": keys})


def call(gateway: RunningGateway, key: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def write_key_file(directory: Path, name: str, entry: dict[str, object]) -> None:
    """As Kubernetes updates a mounted Secret: a new version directory, then one rename."""
    staging = directory / f"..staging-{name}"
    staging.write_text(yaml.safe_dump(entry))
    staging.replace(directory / name)


@pytest.fixture
def two_gateways(mock: MockProvider, tmp_path: Path) -> Iterator[tuple[Path, list[RunningGateway]]]:
    (tmp_path / "keys.d").mkdir()
    write_key_file(
        tmp_path / "keys.d", "ci-bot", {"sha256": sha256("sk-gw-ci-bot"), "models": ["*"]}
    )
    config = configuration(tmp_path, mock, [])
    with ExitStack() as stack:
        gateways = [
            stack.enter_context(running_gateway(config, tmp_path / f"gateway-{index}.log"))
            for index in range(2)
        ]
        yield tmp_path / "keys.d", gateways


def test_a_key_file_removed_is_refused_on_every_gateway_within_two_seconds(
    two_gateways: tuple[Path, list[RunningGateway]],
) -> None:
    keys, gateways = two_gateways
    assert [call(gateway, "sk-gw-ci-bot").status_code for gateway in gateways] == [200, 200]

    removed = time.monotonic()
    (keys / "ci-bot").unlink()
    for gateway in gateways:
        refused = wait_until(
            lambda gateway=gateway: (
                (answer := call(gateway, "sk-gw-ci-bot")).status_code == 401 and answer
            ),
            "the revoked key still works",
            timeout=10,
        )
        assert assert_openai_error(refused, 401)["code"] == "invalid_api_key"
    assert time.monotonic() - removed <= REVOCATION_BOUND

    # Issuing is the same move the other way.
    issued = time.monotonic()
    write_key_file(keys, "deploy-bot", {"sha256": sha256("sk-gw-deploy"), "models": ["chat"]})
    for gateway in gateways:
        wait_until(
            lambda gateway=gateway: call(gateway, "sk-gw-deploy").status_code == 200,
            "the issued key is not accepted",
            timeout=10,
        )
    assert time.monotonic() - issued <= REVOCATION_BOUND


def hey(url: str, key: str, requests: int) -> subprocess.Popen[str]:
    """`hey` posting chat calls with `key`, four at a time."""
    argv = ["hey", "-n", str(requests), "-c", "4", "-m", "POST", "-T", "application/json"]
    argv += ["-H", f"Authorization: Bearer {key}", "-d", json.dumps(CHAT)]
    return subprocess.Popen(
        [*argv, url + "/v1/chat/completions"], stdout=subprocess.PIPE, text=True
    )


def statuses(load: subprocess.Popen[str]) -> dict[int, int]:
    """Responses by status from hey's report (a failed connection counts as status 0)."""
    report, _ = load.communicate(timeout=120)
    assert load.returncode == 0, report
    found = {
        int(code): int(count)
        for code, count in re.findall(r"\[(\d{3})\]\s+(\d+) responses", report)
    }
    errors = re.search(r"Error distribution:\n((?:\s+\[\d+\].*\n)+)", report)
    if errors:
        found[0] = sum(int(n) for n in re.findall(r"\[(\d+)\]", errors.group(1)))
    return found


def test_a_rotation_under_load_fails_no_call_and_retires_the_old_key_at_its_expiry(
    mock: MockProvider, tmp_path: Path
) -> None:
    (tmp_path / "keys.d").mkdir()
    old = "sk-gw-old-key-of-the-app"
    config = configuration(
        tmp_path, mock, [{"id": "app", "sha256": sha256(old), "models": ["chat"], "team": "search"}]
    )
    with running_gateway(config, tmp_path / "gateway.log") as gateway:
        before = hey(gateway.url, old, 600)
        rotated = subprocess.run(
            extproc("keys", "rotate", "app", "--config", str(config), "--grace", "12s"),
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        new = rotated.split()[1]
        entry = yaml.safe_load(rotated.split("expires_at):\n", 1)[1])
        [(expiry_text,)] = [(d["expires_at"],) for d in entry[0]["digests"] if "expires_at" in d]
        expires_at = datetime.datetime.fromisoformat(expiry_text).timestamp()
        document = yaml.safe_load(config.read_text())
        document["keys"] = entry
        staged = tmp_path / "gateway.yaml.next"
        staged.write_text(yaml.safe_dump(document))
        staged.replace(config)  # the old key's calls keep flowing through the reload
        wait_until(lambda: call(gateway, new).status_code == 200, "the new key is not accepted")
        after = hey(gateway.url, new, 400)
        during = call(gateway, old)

        assert statuses(before) == {200: 600}
        assert statuses(after) == {200: 400}
        assert time.time() < expires_at, "the load ran past the grace period: raise --grace"
        assert during.status_code == 200
        assert during.headers["x-extproc-key-expires-at"] == expiry_text
        assert "x-extproc-key-expires-at" not in call(gateway, new).headers

        refused = wait_until(
            lambda: (answer := call(gateway, old)).status_code == 401 and answer,
            "the old key still works after its expiry",
            timeout=30,
        )
        assert time.time() >= expires_at
        error = assert_openai_error(refused, 401)
        assert error["code"] == "key_expired"
        assert expiry_text in str(error["message"])
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=old, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as expired:
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "Hi"}]
            )
        assert expired.value.code == "key_expired"
        assert call(gateway, new).status_code == 200
    assert old not in (tmp_path / "gateway.log").read_text()
    assert new not in (tmp_path / "gateway.log").read_text()
