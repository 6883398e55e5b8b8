"""The spend ledger under faults: a processor killed with calls in flight, and the ledger's
PostgreSQL stalled while calls go on. Each time: no call is lost, none is recorded twice, and
clients see nothing of it."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.spend.rows import SpendRow
from tests.conftest import OPENAI_KEY
from tests.faults.test_quota_faults import SlowStream
from tests.harness import (
    HTTP,
    MockProvider,
    RunningGateway,
    access_log_lines,
    ledger_rows,
    processor_pid,
    running_gateway,
    sha256,
    wait_until,
    write_config,
)
from tests.postgres import postgres_server

pytestmark = [pytest.mark.envoy, pytest.mark.postgresql]

KEY = "sk-gw-faults-quota-0123456789"
"""The key `SlowStream` calls with."""


def document(mock: MockProvider, directory: Path, ledger: str) -> dict[str, Any]:
    (directory / "openai").write_text(OPENAI_KEY)
    return {
        "processor": {"message_timeout": "10s"},
        "providers": {
            "openai": {"kind": "openai", "base_url": mock.url, "api_key": "${file:openai}"}
        },
        "models": {"chat": {"provider": "openai", "model": "gpt-4o-mini"}},
        "prices": {"chat": {"input_per_million": 0.15, "output_per_million": 0.6}},
        "keys": [{"id": "app", "sha256": sha256(KEY), "models": ["chat"]}],
        "telemetry": {"access_log": str(directory / "access.log")},
        "spend": {"ledger": {"store": ledger, "journal": str(directory / "journal")}},
    }


def chat(gateway: RunningGateway) -> int:
    return HTTP.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "Hi"}]},
        headers={"authorization": f"Bearer {KEY}"},
    ).status_code


def logged_ids(config: Path) -> set[str]:
    lines = [orjson.loads(line) for line in access_log_lines(config)]
    return {line["request_id"] for line in lines if line["quota"] is not None}


def test_a_killed_processor_leaves_no_duplicate_and_no_missing_row(
    mock: MockProvider, tmp_path: Path
) -> None:
    ledger = f"sqlite:{tmp_path / 'spend.db'}"
    config = write_config(tmp_path, document(mock, tmp_path, ledger))
    with running_gateway(config, tmp_path / "gateway.log") as gateway:
        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(lambda _: chat(gateway), range(40))) == {200}
        cut = [SlowStream(gateway, words=2000, delay_ms=10) for _ in range(3)]
        for stream in cut:
            assert stream.started.wait(30)
        os.kill(processor_pid(gateway), signal.SIGKILL)
        for stream in cut:
            stream.join(timeout=30)
        wait_until(
            lambda: "starting it again" in gateway.log_path.read_text(),
            "extproc run did not restart its processor",
        )
        after = wait_until(
            lambda: chat(gateway) == 200 and [chat(gateway) for _ in range(20)],
            "the restarted processor did not serve",
        )
        assert set(after) == {200}

        def settled() -> tuple[set[str], list[SpendRow]] | None:
            logged, rows = logged_ids(config), ledger_rows(ledger)
            return (logged, rows) if logged <= {row.request_id for row in rows} else None

        # The dead processor's journal is shipped by the one that replaced it.
        logged, rows = wait_until(settled, "a settled call has no row", timeout=60)
    ids = [row.request_id for row in rows]
    assert len(ids) == len(set(ids)), "a call was recorded twice"
    assert len(logged) >= 61
    # Rows without an access-log line: calls the kill cut after they settled (at most the
    # streams that were open).
    assert len(set(ids) - logged) <= len(cut)


def test_a_stalled_postgresql_delays_rows_but_loses_none_and_holds_no_call(
    mock: MockProvider, tmp_path: Path
) -> None:
    with postgres_server() as postgres:
        config = write_config(tmp_path, document(mock, tmp_path, postgres.url))
        with running_gateway(config, tmp_path / "gateway.log") as gateway:
            assert chat(gateway) == 200
            wait_until(lambda: len(ledger_rows(postgres.url)) == 1, "the first row never came")
            with postgres.frozen(), ThreadPoolExecutor(4) as pool:
                # The shipper is stuck on the database: calls go on, their rows wait.
                assert set(pool.map(lambda _: chat(gateway), range(30))) == {200}
            rows = wait_until(
                lambda: len(found := ledger_rows(postgres.url)) >= 31 and found,
                "the rows kept in the journal never reached PostgreSQL",
            )
            wait_until(lambda: len(logged_ids(config)) == 31, "a call has no access-log line")
            assert {row.request_id for row in rows} == logged_ids(config)
            assert len(rows) == 31
