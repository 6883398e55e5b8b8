"""Envoy's reports of the calls it cut, streamed to the processor over Envoy's access-log
service: only calls whose response flags say why a stream broke off (the client left, the
provider broke its connection or went silent), so that the processor can tell which
(`extproc.cut_reports`). One logger per processor worker: each worker hears every report and
keeps those of its own calls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from envoy_data_plane.envoy.config.accesslog.v3 import (
    AccessLog,
    AccessLogFilter,
    ResponseFlagFilter,
)
from envoy_data_plane.envoy.config.core.v3 import ApiVersion, GrpcService, GrpcServiceEnvoyGrpc
from envoy_data_plane.envoy.extensions.access_loggers.grpc.v3 import (
    CommonGrpcAccessLogConfig,
    HttpGrpcAccessLogConfig,
)
from envoy_data_plane.google.protobuf import Any as AnyMessage

from extproc.telemetry.cuts import ENVOY_FLAGS

LOG_NAME = "extproc-cuts"
FLUSH_EVERY = timedelta(milliseconds=100)
"""How long Envoy holds reports before it sends them (the cut call's log line waits)."""


def cut_report_loggers(clusters: Sequence[str]) -> list[AccessLog]:
    """An access logger for each processor worker's cluster."""
    only_cuts = AccessLogFilter(response_flag_filter=ResponseFlagFilter(flags=list(ENVOY_FLAGS)))
    return [
        AccessLog(
            name="envoy.access_loggers.http_grpc",
            filter=only_cuts,
            typed_config=AnyMessage.pack(
                HttpGrpcAccessLogConfig(
                    common_config=CommonGrpcAccessLogConfig(
                        log_name=LOG_NAME,
                        grpc_service=GrpcService(
                            envoy_grpc=GrpcServiceEnvoyGrpc(cluster_name=cluster)
                        ),
                        transport_api_version=ApiVersion.V3,
                        buffer_flush_interval=FLUSH_EVERY,
                    )
                )
            ),
        )
        for cluster in clusters
    ]
