"""The first attempt of a call to an alias with fallback when the request's own stream
prepared the request for the target it went to. No attempt stream sees such an attempt
(Envoy's matcher skips the filter), so the request's stream reports it: from the call's
answer when that attempt gave it, else from Envoy's report of how it failed (an access-log
entry of the attempt, see `extproc.cut_reports`), which came before the next attempt began."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from extproc import headers as names
from extproc.config import ModelRoute
from extproc.pipeline.cooldown import cooldown_name, note_throttling
from extproc.providers import provider_api
from extproc.quota.store import QuotaStore
from extproc.telemetry.record import AttemptRecord
from extproc.telemetry.reports import Reports
from extproc.telemetry.requests import Telemetry


@dataclass(frozen=True, slots=True)
class AttemptReport:
    """How an attempt ended, as Envoy logged it."""

    status: int | None
    """The provider's status; None when no answer came."""
    headers: dict[str, list[str]]
    """The answer's headers Envoy logs (those that say how long to wait)."""


AttemptReports = Reports[AttemptReport]


def report_key(request_id: str, target: str) -> str:
    """Where the report of a request's attempt to a target (its index) is kept."""
    return f"{request_id}/{target}"


class FirstAttempt:
    __slots__ = ("_key", "_parent", "_record", "_reports", "_store", "_target", "_telemetry")

    def __init__(
        self,
        route: ModelRoute,
        index: int,
        request_id: str | None,
        parent: Mapping[str, str],
        *,
        store: QuotaStore,
        telemetry: Telemetry,
        reports: AttemptReports,
    ) -> None:
        """`index`: the target prepared for; `parent`: the request span's context."""
        self._target = target = route.targets[index]
        self._store, self._telemetry, self._reports = store, telemetry, reports
        self._parent = parent
        self._key = report_key(request_id, str(index)) if request_id else None
        self._record = AttemptRecord(
            alias=route.alias,
            target=cooldown_name(target),
            provider_name=provider_api(target.provider).otel_name,
            model=target.model,
            number=1,
        )

    async def on_answer(self, headers: Mapping[str, list[str]], *, tagged: bool) -> None:
        """The call's answer came (`tagged`: an attempt's stream says which target gave it).
        The only attempt, untagged, was this one; a later attempt's answer means this one
        failed; an only attempt that is tagged went elsewhere, and its stream reported it."""
        if headers.get(names.ATTEMPT_COUNT, ["1"])[0] == "1":
            if not tagged:
                await self._end(int(headers[names.STATUS][0]), headers)
            return
        if self._key is None:
            return
        report = self._reports.take(self._key)
        if report is not None:
            await self._end(report.status, report.headers)
        else:
            self._reports.when_known(self._key, self._on_late_report)

    def _on_late_report(self, report: AttemptReport | None) -> None:
        if report is not None:  # none: Envoy logged nothing for it (it went elsewhere)
            task = asyncio.get_running_loop().create_task(self._end(report.status, report.headers))
            _LATE.add(task)
            task.add_done_callback(_LATE.discard)

    async def _end(self, status: int | None, headers: Mapping[str, list[str]]) -> None:
        record = self._record
        record.status = status
        span = self._telemetry.spans.begin_attempt(record, self._parent)
        self._telemetry.finish_attempt(record, span)
        await note_throttling(self._store, self._telemetry, self._target, status, headers)


_LATE: set[asyncio.Task[None]] = set()
"""Reports handled after their call's answer (kept from the garbage collector until done)."""
