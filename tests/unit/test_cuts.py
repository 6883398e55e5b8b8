"""Why a stream was cut, and how a first attempt failed: Envoy's report reaches the call waiting
for it, whichever comes first."""

from __future__ import annotations

import asyncio

from extproc.envoyapi.access_logs import StreamAccessLogsMessage, read_attempts, read_cuts
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


def attempt_entry(
    request_id: str, target: str | None, status: int | None, **flags: bool
) -> accesslog_pb2.HTTPAccessLogEntry:
    logged = entry(request_id, **flags)
    common = logged.common_properties
    common.access_log_type = accesslog_pb2.AccessLogType.Value("UpstreamEnd")
    if target is not None:
        common.custom_tags["target"] = target
    if status is not None:
        logged.response.response_code.value = status
        logged.response.response_headers["retry-after"] = "30"
    return logged


def test_attempts_are_read_apart_from_the_calls_they_belong_to() -> None:
    """An attempt that timed out carries Envoy's timeout flag: it is no cut of the call."""
    message = StreamAccessLogsMessage()
    message.http_logs.log_entry.extend(
        [
            attempt_entry("a", "0", 429),
            attempt_entry("b", "1", None, upstream_request_timeout=True),
            attempt_entry("c", None, 503),  # not an alias's target: not reported
            entry("d", upstream_request_timeout=True),
        ]
    )
    assert read_attempts(message) == [
        ("a", "0", 429, {"retry-after": ["30"]}),
        ("b", "1", None, {}),
    ]
    assert read_cuts(message, cause_of) == [("d", "upstream_timeout")]


def test_the_first_report_under_a_key_is_kept() -> None:
    causes = CutCauses(wait=30)
    causes.report("r", "client_cut")
    causes.report("r", "upstream_cut")
    assert causes.take("r") == "client_cut"
    assert causes.take("r") is None
