"""The access log: its lines' time, and lines written whole, once per turn of the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io

import orjson
from hypothesis import given
from hypothesis import strategies as st

from extproc.telemetry.access_log import AccessLog, timestamp

# 2000-01-01 to 2100-01-01, in nanoseconds.
INSTANTS = st.integers(min_value=946_684_800 * 10**9, max_value=4_102_444_800 * 10**9)


@given(INSTANTS)
def test_the_time_reads_as_iso_8601_utc_to_the_millisecond(ns: int) -> None:
    truncated = datetime.datetime.fromtimestamp(ns // 1000 // 10**6, datetime.UTC)
    truncated += datetime.timedelta(microseconds=ns // 1000 % 10**6)
    assert timestamp(ns) == truncated.isoformat(timespec="milliseconds")
    assert datetime.datetime.fromisoformat(timestamp(ns)).tzinfo == datetime.UTC


def test_lines_of_one_turn_go_out_together_and_whole() -> None:
    out = io.BytesIO()
    log = AccessLog(out)

    async def calls_ending() -> bytes:
        for number in range(3):
            log.write(orjson.dumps({"call": number}))
        written_during_the_turn = out.getvalue()
        await asyncio.sleep(0)  # the turn ends
        assert out.getvalue() != written_during_the_turn
        return written_during_the_turn

    assert asyncio.run(calls_ending()) == b""
    lines = out.getvalue().splitlines()
    assert [orjson.loads(line) for line in lines] == [{"call": 0}, {"call": 1}, {"call": 2}]
    assert out.getvalue().endswith(b"\n")


def test_a_line_outside_the_event_loop_is_written_at_once() -> None:
    out = io.BytesIO()
    AccessLog(out).write(b'{"call":0}')
    assert out.getvalue() == b'{"call":0}\n'


def test_flushing_writes_what_is_pending() -> None:
    """The processor flushes as it stops: a line of the last turn is not lost."""
    out = io.BytesIO()
    log = AccessLog(out)

    async def last_call() -> None:
        log.write(b'{"call":0}')
        log.flush()
        assert out.getvalue() == b'{"call":0}\n'

    asyncio.run(last_call())


def test_lines_a_failed_write_did_not_take_are_not_kept() -> None:
    """A full disk or a closed pipe loses those lines (as one write per line did), and the
    lines of later turns go out once writing works again: nothing piles up meanwhile."""

    class Failing(io.BytesIO):
        failing = True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            if self.failing:
                raise OSError(28, "No space left on device")
            return super().write(data)

    out = Failing()
    log = AccessLog(out)

    async def turn(number: int) -> None:
        log.write(orjson.dumps({"call": number}))
        with contextlib.suppress(OSError):
            log.flush()

    asyncio.run(turn(0))
    out.failing = False
    asyncio.run(turn(1))
    assert out.getvalue() == b'{"call":1}\n'
