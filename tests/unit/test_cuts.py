"""Why a stream was cut: Envoy's report reaches the call waiting for it, whichever comes first."""

from __future__ import annotations

import asyncio

from extproc.envoyapi.access_logs import StreamAccessLogsMessage, read_cuts
from extproc.envoyapi.protos.envoy.data.accesslog.v3 import accesslog_pb2
from extproc.telemetry.cuts import CutCauses, cause_of


def entry(request_id: str, **flags: bool) -> accesslog_pb2.HTTPAccessLogEntry:
    return accesslog_pb2.HTTPAccessLogEntry(
        common_properties=accesslog_pb2.AccessLogCommon(
            response_flags=accesslog_pb2.ResponseFlags(**flags)
        ),
        request=accesslog_pb2.HTTPRequestProperties(request_id=request_id),
    )


def test_envoys_flags_name_the_cause() -> None:
    message = StreamAccessLogsMessage()
    message.http_logs.log_entry.extend(
        [
            entry("a", downstream_connection_termination=True),
            entry("b", upstream_protocol_error=True),
            entry("c", upstream_connection_termination=True, upstream_remote_reset=True),
            entry("d", stream_idle_timeout=True),
            entry("e", no_route_found=True),  # not a cut: not reported
            entry("", downstream_connection_termination=True),  # no request id: nobody waits
        ]
    )
    assert read_cuts(message, cause_of) == [
        ("a", "client_cut"),
        ("b", "upstream_cut"),
        ("c", "upstream_cut"),
        ("d", "upstream_timeout"),
    ]


async def test_a_report_reaches_the_call_before_or_after_it_waits() -> None:
    causes = CutCauses(wait=30)
    heard: dict[str, str | None] = {}
    causes.report("early", "client_cut")
    causes.when_known("early", lambda cause: heard.update(early=cause))
    causes.when_known("late", lambda cause: heard.update(late=cause))
    assert heard == {"early": "client_cut"}
    causes.report("late", "upstream_cut")
    assert heard == {"early": "client_cut", "late": "upstream_cut"}


async def test_without_a_report_the_call_goes_on_after_the_wait() -> None:
    causes = CutCauses(wait=0.01)
    done = asyncio.Event()
    heard: list[str | None] = []
    causes.when_known("never", lambda cause: (heard.append(cause), done.set()))
    await asyncio.wait_for(done.wait(), 5)
    assert heard == [None]
    causes.when_known("stopping", heard.append)
    causes.flush()
    assert heard == [None, None]
