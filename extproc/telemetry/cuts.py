"""Why a stream was cut, as Envoy tells it.

The processor sees a cut stream only as Envoy resetting the processor's own stream, the same
whether the client left or the provider broke its connection. Envoy knows which (its
response flags), and reports such requests over its access-log service (see
`extproc.cut_reports`). A call whose stream was cut waits here a moment for that report before
its access-log line and span are written; without one it stays `stream_cut`.
"""

from __future__ import annotations

from collections.abc import Callable

from extproc.telemetry.reports import Reports

STREAM_CUT = "stream_cut"

_CAUSES = {
    "downstream_connection_termination": "client_cut",
    "upstream_connection_termination": "upstream_cut",
    "upstream_remote_reset": "upstream_cut",
    "upstream_protocol_error": "upstream_cut",
    "upstream_request_timeout": "upstream_timeout",
    "stream_idle_timeout": "upstream_timeout",
}
"""Envoy's response flags (by field name) and the cause each names, in order of precedence."""
ENVOY_FLAGS = ("DC", "UC", "UR", "UPE", "UT", "SI")
"""The same flags as Envoy's access-log filters spell them."""


def cause_of(flags: Callable[[str], bool]) -> str | None:
    """The cause the set response flags name (`flags(name)`: whether a flag is set)."""
    for name, cause in _CAUSES.items():
        if flags(name):
            return cause
    return None


CutCauses = Reports[str]
"""Why calls were cut, by request id."""
