"""Envoy's access-log service, served beside ext_proc. Envoy streams the calls it cut (their
response flags say whether the client left, the provider broke off or went silent), and the
failed attempts of calls to aliases with fallback; each report reaches the call waiting for
it (see `extproc.telemetry.reports`). Envoy sends only such entries: its access loggers
filter them (see `extproc.envoyconfig.cut_reports`)."""

from __future__ import annotations

from extproc.envoyapi.access_logs import (
    SERVICE,
    StreamAccessLogsMessage,
    read_attempts,
    read_cuts,
)
from extproc.first_attempt import AttemptReport, AttemptReports, report_key
from extproc.telemetry.cuts import CutCauses, cause_of
from extproc.transport import Call, Method


class ReportService:
    def __init__(self, causes: CutCauses, attempts: AttemptReports) -> None:
        self._causes = causes
        self._attempts = attempts

    async def stream(self, call: Call[StreamAccessLogsMessage]) -> None:
        """Envoy streams reports for as long as it runs and expects no answer."""
        async for message in call:
            for request_id, cause in read_cuts(message, cause_of):
                self._causes.report(request_id, cause)
            for request_id, target, status, headers in read_attempts(message):
                self._attempts.report(
                    report_key(request_id, target), AttemptReport(status, headers)
                )

    def methods(self) -> dict[str, Method[StreamAccessLogsMessage]]:
        return {f"/{SERVICE}/StreamAccessLogs": Method(self.stream, StreamAccessLogsMessage)}
