"""Why a stream was cut, as Envoy tells it.

The processor sees a cut stream only as Envoy resetting the processor's own stream, the same
whether the client left or the provider broke its connection. Envoy knows which (its
response flags), and reports such requests over its access-log service (see
`extproc.cut_reports`). A call whose stream was cut waits here a moment for that report before
its access-log line and span are written; without one it stays `stream_cut`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

STREAM_CUT = "stream_cut"
REPORT_WAIT = 2.0
"""Seconds a cut call waits for Envoy's report (Envoy sends it within about 0.1 s)."""
KEPT = 4096
"""Reports kept for calls not (yet) seen: with several workers, each hears of every call."""

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


class CutCauses:
    """Reports of cut calls by request id, and the calls waiting for theirs."""

    def __init__(self, wait: float = REPORT_WAIT) -> None:
        self._wait = wait
        self._known: OrderedDict[str, str] = OrderedDict()
        self._waiting: dict[str, tuple[Callable[[str | None], None], asyncio.TimerHandle]] = {}

    def report(self, request_id: str, cause: str) -> None:
        """Envoy says why the call with this request id was cut."""
        waiting = self._waiting.pop(request_id, None)
        if waiting is not None:
            then, timer = waiting
            timer.cancel()
            then(cause)
            return
        self._known[request_id] = cause
        if len(self._known) > KEPT:
            self._known.popitem(last=False)

    def when_known(self, request_id: str, then: Callable[[str | None], None]) -> None:
        """Call `then` with the cause once Envoy reports it, or with None after the wait."""
        cause = self._known.pop(request_id, None)
        if cause is not None:
            then(cause)
            return
        timer = asyncio.get_running_loop().call_later(self._wait, self._give_up, request_id)
        self._waiting[request_id] = (then, timer)

    def flush(self) -> None:
        """Stop waiting (the processor is stopping): every waiting call goes on without."""
        for request_id in list(self._waiting):
            self._waiting[request_id][1].cancel()
            self._give_up(request_id)

    def _give_up(self, request_id: str) -> None:
        then, _ = self._waiting.pop(request_id)
        then(None)
