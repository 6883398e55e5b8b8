"""Reading what Envoy's access-log service streams: which calls were cut, and why (entries of
whole requests); how first attempts of calls with fallback failed (entries of attempts)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from extproc.contract import ATTEMPT_TARGET_TAG
from extproc.envoyapi.protos.envoy.data.accesslog.v3 import accesslog_pb2
from extproc.envoyapi.protos.envoy.service.accesslog.v3 import als_pb2

StreamAccessLogsMessage = als_pb2.StreamAccessLogsMessage
SERVICE = "envoy.service.accesslog.v3.AccessLogService"
"""The gRPC service Envoy's access loggers call; its one method is `StreamAccessLogs`."""
_ATTEMPT = accesslog_pb2.AccessLogType.Value("UpstreamEnd")

AttemptEntry = tuple[str, str, int | None, dict[str, list[str]]]
"""An attempt's request id, target index, status (None: no answer) and answer headers."""


def read_cuts(
    message: StreamAccessLogsMessage, cause_of: Callable[[Callable[[str], bool]], str | None]
) -> list[tuple[str, str]]:
    """(request id, cause) of each HTTP entry whose response flags name a cause
    (`cause_of(is_set)`, `is_set(flag)` telling whether a flag is set)."""
    reports = []
    for entry in message.http_logs.log_entry:
        if entry.common_properties.access_log_type == _ATTEMPT:
            continue
        cause = cause_of(functools.partial(_is_set, entry.common_properties.response_flags))
        if cause is not None and entry.request.request_id:
            reports.append((entry.request.request_id, cause))
    return reports


def read_attempts(message: StreamAccessLogsMessage) -> list[AttemptEntry]:
    """The entries of attempts that went to a target of an alias (tagged with it)."""
    attempts = []
    for entry in message.http_logs.log_entry:
        common = entry.common_properties
        target = common.custom_tags.get(ATTEMPT_TARGET_TAG)
        if common.access_log_type != _ATTEMPT or not target or not entry.request.request_id:
            continue
        response = entry.response
        status = response.response_code.value if response.HasField("response_code") else 0
        headers = {name: [value] for name, value in response.response_headers.items()}
        attempts.append((entry.request.request_id, target, status or None, headers))
    return attempts


def _is_set(flags: object, name: str) -> bool:
    return bool(getattr(flags, name))
