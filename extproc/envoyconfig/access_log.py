"""Envoy's own access log (`telemetry.envoy_access_log`): one JSON line per request, with
what the processor settled for it (usage and cost, from its dynamic metadata)."""

from __future__ import annotations

from envoy_data_plane.envoy.config.accesslog.v3 import AccessLog
from envoy_data_plane.envoy.config.core.v3 import SubstitutionFormatString
from envoy_data_plane.envoy.extensions.access_loggers.file.v3 import FileAccessLog
from envoy_data_plane.google.protobuf import Any as AnyMessage
from envoy_data_plane.google.protobuf import Struct, Value

from extproc.contract import SHARED_METADATA

FIELDS = {
    "time": "%START_TIME%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "status": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%",
    "duration_ms": "%DURATION%",
    "upstream": "%UPSTREAM_CLUSTER%",
    **{
        name: f"%DYNAMIC_METADATA({SHARED_METADATA}:{name})%"
        for name in (
            "cost_usd",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        )
    },
}
"""What each line holds; the figures are the processor's, set when the answer ends."""
PATHS = {"stdout": "/dev/stdout", "stderr": "/dev/stderr"}


def envoy_access_log(target: str) -> AccessLog | None:
    """`off`, `stdout`, `stderr` or a file path."""
    if target == "off":
        return None
    fields = {name: Value(string_value=value) for name, value in FIELDS.items()}
    return AccessLog(
        name="envoy.access_loggers.file",
        typed_config=AnyMessage.pack(
            FileAccessLog(
                path=PATHS.get(target, target),
                log_format=SubstitutionFormatString(json_format=Struct(fields=fields)),
            )
        ),
    )
