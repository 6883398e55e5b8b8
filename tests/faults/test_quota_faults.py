"""Quotas under ordinary faults: Redis frozen past the quota timeout, Redis restarted without
persistence while streams are open, the processor killed with streams in flight. Each time:
what the client gets, that no slot stays held beyond the documented bound, and that the
counters hold what the provider answered."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from extproc.quota.store import OWNER_TTL
from extproc.response import STREAM_STEP
from tests.conftest import OPENAI_KEY
from tests.harness import (
    HTTP,
    MockProvider,
    RedisServer,
    RunningGateway,
    access_log_lines,
    counter_used,
    free_port,
    processor_pid,
    redis_server,
    running_gateway,
    settles_to,
    sha256,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.envoy, pytest.mark.redis]

KEY = "sk-gw-faults-quota-0123456789"
SLOTS = 4
PROMPT = [{"role": "user", "content": "Hello"}]


def document(mock: MockProvider, redis_port: int, policy: str, directory: Path) -> dict[str, Any]:
    return {
        "processor": {"message_timeout": "10s"},
        "providers": {
            "openai": {"kind": "openai", "base_url": mock.url, "api_key": "${file:openai}"}
        },
        "models": {"chat": {"provider": "openai", "model": "gpt-4o-mini"}},
        "keys": [
            {
                "id": "app",
                "sha256": sha256(KEY),
                "models": ["chat"],
                "limits": [{"concurrent": SLOTS}, {"tokens": 10_000_000, "per": "1d"}],
            }
        ],
        "quota": {
            "store": f"redis://127.0.0.1:{redis_port}/0",
            "timeout": "250ms",
            "on_store_error": policy,
        },
        "telemetry": {"access_log": str(directory / "access.log")},
    }


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def start_gateway(
    mock: MockProvider, redis: RedisServer, directory: Path, policy: str = "deny"
) -> tuple[Path, Any]:
    (directory / "openai").write_text(OPENAI_KEY)
    config = write_config(directory, document(mock, redis.port, policy, directory))
    return config, running_gateway(config, directory / "gateway.log")


def chat(gateway: RunningGateway, **headers: str) -> httpx.Response:
    return HTTP.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "chat", "messages": PROMPT},
        headers={"authorization": f"Bearer {KEY}", **headers},
    )


class SlowStream(threading.Thread):
    """A streamed chat that stays open (one event every `delay_ms`) until the provider ends
    it or it is cut; `started` is set once its first bytes arrived."""

    def __init__(self, gateway: RunningGateway, words: int = 400, delay_ms: int = 25) -> None:
        super().__init__(daemon=True)
        self._gateway = gateway
        self._headers = {
            "authorization": f"Bearer {KEY}",
            "x-mock-words": str(words),
            "x-mock-chunk-delay-ms": str(delay_ms),
        }
        self.started = threading.Event()
        self.status: int | None = None
        self.body = b""
        self.cut = False
        self.start()

    def run(self) -> None:
        body = {
            "model": "chat",
            "messages": PROMPT,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        try:
            with httpx.stream(
                "POST",
                self._gateway.url + "/v1/chat/completions",
                json=body,
                headers=self._headers,
                timeout=60,
            ) as response:
                self.status = response.status_code
                for chunk in response.iter_raw():
                    self.body += chunk
                    self.started.set()
        except httpx.HTTPError:
            self.cut = True
        finally:
            self.started.set()

    def usage_tokens(self) -> int:
        """The total tokens of the stream's final usage event."""
        for line in reversed(self.body.split(b"\n")):
            if line.startswith(b"data: {") and b'"usage":{' in line:
                return int(orjson.loads(line[6:])["usage"]["total_tokens"])
        raise AssertionError("the stream reported no usage")


def streams_at_once(gateway: RunningGateway, count: int = SLOTS) -> list[SlowStream]:
    """`count` short streams started together, each run to its end."""
    streams = [SlowStream(gateway, words=20, delay_ms=5) for _ in range(count)]
    for stream in streams:
        stream.join(timeout=30)
    return streams


@pytest.mark.parametrize("policy", ["deny", "allow"])
def test_a_frozen_redis_leaves_no_phantom_reservation(
    mock: MockProvider, redis: RedisServer, tmp_path: Path, policy: str
) -> None:
    config, running = start_gateway(mock, redis, tmp_path, policy)
    with running as gateway:
        first = chat(gateway)
        assert first.status_code == 200
        with redis.frozen(), ThreadPoolExecutor(2 * SLOTS) as pool:
            # Reservations written to live connections, none answered in time.
            answers = list(pool.map(lambda _: chat(gateway), range(2 * SLOTS)))
        if policy == "deny":
            assert {answer.status_code for answer in answers} == {503}
            codes = {answer.json()["error"]["code"] for answer in answers}
            assert codes == {"quota_store_unavailable"}
        else:
            assert {answer.status_code for answer in answers} == {200}  # served, unmetered

        # Redis has run what it was sent, late: none of it holds a slot or counts.
        streams = streams_at_once(gateway)
        assert [stream.status for stream in streams] == [200] * SLOTS
        charged = first.json()["usage"]["total_tokens"]
        charged += sum(stream.usage_tokens() for stream in streams)
        settles_to(config, "app", "tokens", charged)
        assert counter_used(config, "app", "concurrent", per=None) == 0
        # Every call has its access-log line, with what it got.
        lines = wait_until(
            lambda: len(found := access_log_lines(config)) == 1 + 2 * SLOTS + SLOTS and found,
            "a call has no access-log line",
        )
        statuses = [orjson.loads(line)["status"] for line in lines]
        assert statuses[1 : 1 + 2 * SLOTS] == [503 if policy == "deny" else 200] * (2 * SLOTS)


def test_a_redis_restarted_under_open_streams_gets_their_whole_cost(
    mock: MockProvider, tmp_path: Path
) -> None:
    port = free_port()
    with redis_server(port) as redis:
        config, running = start_gateway(mock, redis, tmp_path)
        with running as gateway:
            streams = [SlowStream(gateway, words=120, delay_ms=25) for _ in range(SLOTS)]
            for stream in streams:
                assert stream.started.wait(30)
            redis.process.stop()  # no persistence: every counter and ticket is gone
            with redis_server(port):
                after = [chat(gateway) for _ in range(3)]
                for stream in streams:
                    stream.join(timeout=60)
                assert [stream.status for stream in streams] == [200] * SLOTS
                assert {answer.status_code for answer in after} == {200}
                # The streams reserved before the restart are charged in full on the new
                # counters (not their difference to a reservation the new Redis never had).
                expected = sum(stream.usage_tokens() for stream in streams)
                expected += sum(answer.json()["usage"]["total_tokens"] for answer in after)
                settles_to(config, "app", "tokens", expected)
                assert counter_used(config, "app", "concurrent", per=None) == 0


def test_a_killed_processor_frees_its_slots_within_the_owner_ttl(
    mock: MockProvider, redis: RedisServer, tmp_path: Path
) -> None:
    config, running = start_gateway(mock, redis, tmp_path)
    with running as gateway:
        cut = [SlowStream(gateway, words=2000, delay_ms=10) for _ in range(SLOTS)]
        for stream in cut:
            assert stream.started.wait(30)
        os.kill(processor_pid(gateway), signal.SIGKILL)
        killed_at = time.monotonic()
        for stream in cut:
            stream.join(timeout=30)
        assert all(stream.cut or b"[DONE]" not in stream.body for stream in cut)
        wait_until(
            lambda: "starting it again" in gateway.log_path.read_text(),
            "extproc run did not restart its processor",
        )
        # Until the dead processor's beat runs out its slots are held; then all are free.
        after = wait_until(
            lambda: (
                (streams := streams_at_once(gateway))
                and all(stream.status == 200 for stream in streams)
                and streams
            ),
            "the killed processor's slots were never freed",
            timeout=OWNER_TTL + 20,
        )
        assert time.monotonic() - killed_at < OWNER_TTL + 10
        served = sum(stream.usage_tokens() for stream in after)
        # A settlement frees the slot and charges the tokens in one step.
        wait_until(
            lambda: counter_used(config, "app", "concurrent", per=None) == 0,
            "the streams after the restart were not settled",
        )
        unsettled = counter_used(config, "app", "tokens") - served
        # Each cut stream stays charged what it reserved: its input and output reserved
        # STREAM_STEP at a time, not its whole output cap.
        assert 0 < unsettled <= SLOTS * 3 * STREAM_STEP, unsettled


def test_a_settlement_redis_missed_is_made_once_it_answers(
    mock: MockProvider, redis: RedisServer, tmp_path: Path
) -> None:
    config, running = start_gateway(mock, redis, tmp_path)
    with running as gateway:
        stream = SlowStream(gateway, words=40, delay_ms=20)
        assert stream.started.wait(30)
        with redis.frozen():
            stream.join(timeout=30)  # it ends, and its settlement finds no store
            assert stream.status == 200 and b"[DONE]" in stream.body
            wait_until(
                lambda: "the settlement is kept" in gateway.log_path.read_text(),
                "the settlement did not fail",
            )
        settles_to(config, "app", "tokens", stream.usage_tokens())
        assert counter_used(config, "app", "concurrent", per=None) == 0
