"""Envoy's access-log service, served beside ext_proc: Envoy streams the calls it cut (its
response flags say whether the client left, the provider broke off or went silent), and each
report reaches the call waiting for it (see `extproc.telemetry.cuts`). Envoy sends only such
calls: its access loggers filter on those flags (see `extproc.envoyconfig.cut_reports`)."""

from __future__ import annotations

from extproc.envoyapi.access_logs import SERVICE, StreamAccessLogsMessage, read_cuts
from extproc.telemetry.cuts import CutCauses, cause_of
from extproc.transport import Call, Method


class CutReportService:
    def __init__(self, causes: CutCauses) -> None:
        self._causes = causes

    async def stream(self, call: Call[StreamAccessLogsMessage]) -> None:
        """Envoy streams reports for as long as it runs and expects no answer."""
        async for message in call:
            for request_id, cause in read_cuts(message, cause_of):
                self._causes.report(request_id, cause)

    def methods(self) -> dict[str, Method[StreamAccessLogsMessage]]:
        return {f"/{SERVICE}/StreamAccessLogs": Method(self.stream, StreamAccessLogsMessage)}
