"""Reading what Envoy's access-log service streams: which calls were cut, and why."""

from __future__ import annotations

import functools
from collections.abc import Callable

from extproc.envoyapi.protos.envoy.service.accesslog.v3 import als_pb2

StreamAccessLogsMessage = als_pb2.StreamAccessLogsMessage
SERVICE = "envoy.service.accesslog.v3.AccessLogService"
"""The gRPC service Envoy's access loggers call; its one method is `StreamAccessLogs`."""


def read_cuts(
    message: StreamAccessLogsMessage, cause_of: Callable[[Callable[[str], bool]], str | None]
) -> list[tuple[str, str]]:
    """(request id, cause) of each HTTP entry whose response flags name a cause
    (`cause_of(is_set)`, `is_set(flag)` telling whether a flag is set)."""
    reports = []
    for entry in message.http_logs.log_entry:
        cause = cause_of(functools.partial(_is_set, entry.common_properties.response_flags))
        if cause is not None and entry.request.request_id:
            reports.append((entry.request.request_id, cause))
    return reports


def _is_set(flags: object, name: str) -> bool:
    return bool(getattr(flags, name))
