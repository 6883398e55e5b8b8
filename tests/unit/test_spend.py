"""The spend ledger's parts: the journal (appends that survive a killed process, orphans
shipped by the living, a bounded backlog), the SQLite store (written once per call, migrated
by the gateway), reports, reconciliation, the cost a client sees, budget alerts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from extproc.config.model import AlertSettings, LedgerSettings
from extproc.config.secrets import Secret
from extproc.pipeline.cost import Charged, with_cost
from extproc.quota.ledger import Ledger
from extproc.quota.limits import Limit, Price
from extproc.quota.memory_store import MemoryStore
from extproc.quota.windows import fixed_window
from extproc.spend import alerts as alerts_module
from extproc.spend import journal as journal_module
from extproc.spend.alerts import BudgetAlerts
from extproc.spend.journal import Journal
from extproc.spend.reconcile import standings
from extproc.spend.reports import parse_instant, render, spend_report
from extproc.spend.rows import COLUMNS, SpendRow, Values, journal_line, read_line, row_values
from extproc.spend.shipper import SpendLedger
from extproc.spend.stores import MIGRATIONS, SqliteLedger
from extproc.telemetry.record import RequestRecord
from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.openai import OPENAI
from extproc.translators.responses import RESPONSES
from extproc.usage import Usage
from tests.harness import free_port


def row(call_id: str, *, team: str = "lab", cost: int = 5, counters: str = "[]") -> SpendRow:
    return SpendRow(
        call_id=call_id,
        time=1_796_000_000.0,
        request_id=f"req-{call_id}",
        key_id="app",
        team=team,
        subject=None,
        alias="chat",
        provider="openai",
        model="gpt-4o-mini",
        operation="chat",
        stream=False,
        charged=True,
        input_tokens=10,
        output_tokens=20,
        cached_input_tokens=4,
        cache_write_tokens=0,
        reasoning_tokens=0,
        cost_micro_usd=cost,
        status=200,
        attempts=None,
        counters=counters,
    )


def values(row: SpendRow) -> Values:
    return [getattr(row, name) for name in COLUMNS]


def test_a_row_survives_the_journal_line_it_is_written_as() -> None:
    original = row("a", counters='["key:app:usd:1d:*:0"]')
    read = read_line(journal_line(values(original)))
    assert read is not None and SpendRow.of(read) == original
    assert original.counter_names() == ["key:app:usd:1d:*:0"]
    assert read_line(journal_line(values(original))[:-20]) is None  # a line cut mid-write


def test_a_refunded_call_is_recorded_at_zero_and_calls_that_never_reached_quota_not_at_all() -> (
    None
):
    record = RequestRecord(method="POST", path="/v1/chat/completions", operation="chat")
    assert row_values(record, "a") is None  # refused before its quota (a malformed body)
    record.quota, record.status, record.alias = "metered", 500, "chat"
    refunded_values = row_values(record, "b")
    assert refunded_values is not None
    refunded = SpendRow.of(refunded_values)
    assert not refunded.charged and (refunded.cost_micro_usd, refunded.input_tokens) == (0, 0)
    record.usage, record.cost_usd, record.status = Usage(10, 20), 0.000_013, 200
    charged_values = row_values(record, "c")
    assert charged_values is not None
    charged = SpendRow.of(charged_values)
    assert charged.charged and charged.cost_micro_usd == 13 and charged.call_id == "c"
    mcp = RequestRecord(operation="mcp", quota="metered")
    assert row_values(mcp, "d") is None


def test_journal_rows_are_shipped_once_and_a_full_segment_starts_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "SEGMENT_SIZE", 500)
    journal = Journal(tmp_path, max_backlog=1 << 20)
    for index in range(3):
        journal.append(values(row(str(index))))
    rows, end = journal.take()
    assert [item[0] for item in rows] == ["0", "1", "2"]
    journal.shipped(end)
    assert journal.take()[0] == [] and journal.backlog == 0
    segments = list(tmp_path.glob("*.rows"))
    for index in range(3, 6):
        journal.append(values(row(str(index))))
    rows, end = journal.take()
    assert [item[0] for item in rows] == ["3", "4", "5"]
    journal.shipped(end)  # over SEGMENT_SIZE, all shipped: a new segment, the old one gone
    assert list(tmp_path.glob("*.rows")) != segments and len(list(tmp_path.glob("*.rows"))) == 1
    journal.close()


def test_a_full_backlog_drops_rows_and_counts_them(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_backlog=len(journal_line(values(row("x")))) * 2)
    for index in range(5):
        journal.append(values(row(str(index))))
    assert journal.dropped == 3
    rows, end = journal.take()
    assert len(rows) == 2
    journal.shipped(end)
    journal.append(values(row("later")))  # room again once the store took the others
    assert journal.dropped == 3
    journal.close()


def test_the_journal_of_a_killed_process_is_shipped_by_a_living_one(tmp_path: Path) -> None:
    """The writer appends its rows and is killed with SIGKILL before shipping any."""
    lines = [journal_line(values(row(f"dead-{index}"))) for index in range(50)]
    (tmp_path / "lines").write_bytes(b"".join(lines))
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, pathlib
                from extproc.spend.journal import Journal
                from extproc.spend.rows import read_line
                journal = Journal(pathlib.Path({str(tmp_path / "journal")!r}), max_backlog=1 << 20)
                for line in pathlib.Path({str(tmp_path / "lines")!r}).read_bytes().splitlines():
                    journal.append(read_line(line))
                print("written", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert writer.stdout is not None and writer.stdin is not None
    assert writer.stdout.readline() == b"written\n"
    living = Journal(tmp_path / "journal", max_backlog=1 << 20)
    with living.orphan() as orphan:
        assert orphan is None, "a live writer's journal is not taken"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    writer.stdin.close()
    with living.orphan() as orphan:
        assert orphan is not None
        _, rows = orphan
    assert [item[0] for item in rows] == [f"dead-{index}" for index in range(50)]
    assert len(list((tmp_path / "journal").glob("*.rows"))) == 1  # only the living one's
    with living.orphan() as orphan:
        assert orphan is None
    living.close()


def test_the_sqlite_ledger_keeps_one_row_per_call_and_migrates_once(tmp_path: Path) -> None:
    store = SqliteLedger(tmp_path / "spend.db")
    store.migrate()
    store.migrate()  # a second process starting: nothing to do
    rows = [values(row("a")), values(row("b", team="ops", cost=7))]
    store.insert(rows)
    store.insert(rows)  # a replayed shipment
    assert sorted(item.call_id for item in store.rows(0, 4e9)) == ["a", "b"]
    report = spend_report(store, "team", 0, 4e9)
    assert report[0]["team"] == "ops" and report[0]["cost_usd"] == 7e-6
    assert report[1] == {
        "team": "lab",
        "calls": 1,
        "charged_calls": 1,
        "input_tokens": 10,
        "output_tokens": 20,
        "cached_input_tokens": 4,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": 5e-6,
    }
    assert store.report("day", 0, 4e9)[0][0] == "2026-11-30"
    assert store.delete_before(4e9) == 2
    store.close()
    with SqliteLedger(tmp_path / "spend.db")._transaction() as cursor:
        cursor.execute("SELECT version FROM spend_schema")
        assert cursor.fetchall() == [(len(MIGRATIONS),)]


def test_reports_render_as_a_table_csv_and_json_lines() -> None:
    entries = [
        {"model": "gpt-4o", "calls": 2, "charged_calls": 2}
        | dict.fromkeys(("input_tokens", "output_tokens", "cached_input_tokens"), 1)
        | {"cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.0123}
    ]
    table = render(entries, "model", "table").splitlines()
    assert table[0].split()[0] == "MODEL" and table[1].split()[-1] == "0.012300"
    assert render(entries, "model", "csv").splitlines()[1].startswith("gpt-4o,2,2,1,1,1,0,0,")
    assert orjson.loads(render(entries, "model", "json")) == entries[0]
    assert parse_instant("2026-12-01") == 1_796_083_200.0
    with pytest.raises(ValueError, match="neither a date"):
        parse_instant("last tuesday")


def test_reconciliation_sums_what_each_row_was_charged_to() -> None:
    window = fixed_window(86400, "1d")
    usd = Limit("key:app", "usd", 100, window, None, shadow=False, clamp_max_tokens=False)
    tokens = Limit("key:app", "tokens", 100, window, None, shadow=False, clamp_max_tokens=False)
    now = 1_796_000_000.0
    counters = [usd.counter_at(now)[0], tokens.counter_at(now)[0]]
    charged = [row(str(index), counters=orjson.dumps(counters).decode()) for index in range(3)]
    elsewhere = row("other", counters=orjson.dumps(["key:app:usd:1d:*:0"]).decode())
    lines = standings([usd, tokens], [15, 90], [*charged, elsewhere], now)
    assert [(line.counted, line.ledger, line.agrees) for line in lines] == [
        (15, 15, True),
        (90, 90, True),
    ]
    lines = standings([usd, tokens], [15, 91], charged, now)
    assert [line.agrees for line in lines] == [True, False]


def test_the_cost_is_written_into_the_final_usage_event_of_each_client_schema() -> None:
    charged = Charged.of(Usage(100, 50), Price(1.0, 2.0))
    assert charged.micro_usd == 200 and charged.usd == 0.0002
    openai = b'data: {"choices":[],"usage":{"prompt_tokens":100}}\n\ndata: [DONE]\n\n'
    out, found = with_cost(openai, OPENAI.client.final_usage, charged)  # type: ignore[union-attr]
    assert found and orjson.loads(out.split(b"\n")[0][6:])["usage"]["cost_usd"] == 0.0002
    assert out.endswith(b"data: [DONE]\n\n")
    start = b'event: message_start\ndata: {"type":"message_start","message":{"usage":{}}}\n\n'
    delta = b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":50}}\n\n'
    client = ANTHROPIC.client
    assert client is not None
    assert with_cost(start, client.final_usage, charged) == (start, False)
    out, found = with_cost(delta, client.final_usage, charged)
    assert found and out.startswith(b"event: message_delta\ndata: ")
    assert orjson.loads(out.split(b"\n")[1][6:])["usage"] == {
        "output_tokens": 50,
        "cost_usd": 0.0002,
    }
    done = (
        b'event: response.completed\ndata: {"type":"response.completed",'
        b'"response":{"usage":{"input_tokens":100}}}\n\n'
    )
    assert RESPONSES.client is not None
    out, found = with_cost(done, RESPONSES.client.final_usage, charged)
    assert found and b'"cost_usd":0.0002' in out
    unpriced = Charged.of(Usage(1, 1), None)
    assert with_cost(openai, OPENAI.client.final_usage, unpriced) == (openai, False)  # type: ignore[union-attr]
    assert ("x-extproc-cost-usd", "0.000200") in charged.headers()
    assert not [name for name, _ in unpriced.headers() if name == "x-extproc-cost-usd"]


async def test_a_budget_alert_is_claimed_once_and_retried_until_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(alerts_module, "SEND_BACKOFF", (0.0, 0.0))
    store = MemoryStore()
    ledger = Ledger(store, lease=60)
    window = fixed_window(86400, "1d")
    limit = Limit("team:lab", "usd", 1000, window, None, shadow=False, clamp_max_tokens=False)
    price = Price(1.0, 1.0)  # a micro-dollar a token
    statuses = [503, 200, 200, 200]
    sent: list[dict[str, object]] = []

    def sender(url: str, body: bytes, timeout: float) -> int:
        assert url == "http://alerts.example/hook" and timeout == 2.0
        sent.append(orjson.loads(body))
        return statuses.pop(0)

    settings = AlertSettings(Secret("http://alerts.example/hook"), (0.5, 0.8), 2.0)
    first = BudgetAlerts(settings, store, sender=sender)
    second = BudgetAlerts(settings, store, sender=sender)  # another replica
    for alerts in (first, second):
        reservation = await ledger.reserve(
            [limit], alias="chat", price=price, estimate=Usage(300, 0), policy="deny"
        )
        await reservation.settle(Usage(300, 0))
        alerts.mark(reservation)
    await first.check()
    await second.check()
    for _ in range(100):
        if first.sent + second.sent == 1:
            break
        await asyncio.sleep(0.01)
    assert first.sent + second.sent == 1
    assert [item["threshold_percent"] for item in sent] == [50, 50]  # a 503, then delivered
    assert sent[0]["limit"] == {  # type: ignore[comparison-overlap]
        "scope": "team:lab",
        "metric": "usd",
        "amount": 0.001,
        "per": "1d",
        "model": None,
        "description": "team:lab 0.001 usd per 1d",
    }
    assert sent[0]["value"] == 0.0006


async def test_a_store_that_fails_keeps_rows_in_the_journal_and_never_logs_its_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = free_port()
    url = f"postgresql://extproc:pw-never-logged@127.0.0.1:{closed}/spend?connect_timeout=2"
    settings = LedgerSettings(Secret(url), tmp_path / "journal", 86400.0, 1 << 20)
    ledger = SpendLedger(settings)
    record = RequestRecord(operation="chat", quota="metered", status=200, usage=Usage(1, 2))
    ledger.record(record)
    task = asyncio.create_task(ledger.run())
    try:
        for _ in range(500):
            if ledger.store_errors:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert ledger.store_errors >= 1 and ledger.backlog > 0
    assert "the store failed" in caplog.text
    assert "pw-never-logged" not in caplog.text
    await ledger.close()
