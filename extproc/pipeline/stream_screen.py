"""Screening a streamed answer at event boundaries: each kind of text (the answer's, its
thinking, each tool call's arguments) goes through a window that holds back only what a
detector could still match once more text comes; the rest flows on, masked where a policy
masks. A block ends the stream after what was already settled."""

from __future__ import annotations

from collections.abc import Iterable

from extproc.guardrails.policy import Screen, Verdicts
from extproc.guardrails.scan import ScanTimeout, Window
from extproc.translators.ir import ReasoningDelta, StreamEvent, TextDelta, ToolArgumentsDelta

Channel = tuple[str, int]
_TEXT: Channel = ("text", 0)
_REASONING: Channel = ("reasoning", 0)


class StreamScreen:
    __slots__ = ("_channel", "_origin", "_window", "screen", "texts", "verdicts")

    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        self.texts: list[str] | None = [] if screen.external else None
        """The texts released so far, for external checks: they judge the whole answer, so
        a stream they screen is held back whole until they have."""
        self._channel: Channel | None = None
        self._window: Window | None = None
        self._origin: str | None = None
        self.verdicts = Verdicts()

    @property
    def blocked(self) -> bool:
        return self.verdicts.blocked is not None

    def feed(self, events: Iterable[StreamEvent]) -> list[StreamEvent]:
        """The events the client may get now; nothing more once a policy blocked."""
        out: list[StreamEvent] = []
        for event in events:
            if self.blocked:
                break
            if isinstance(event, TextDelta):
                self._into(_TEXT, event.text, out)
            elif isinstance(event, ToolArgumentsDelta):
                self._into(("tool", event.index), event.fragment, out)
            elif isinstance(event, ReasoningDelta):
                self._origin = event.origin or self._origin
                if event.text:
                    self._into(_REASONING, event.text, out)
                if event.signature:
                    self._close(out)
                    out.append(ReasoningDelta("", event.signature, event.origin))
            else:
                self._close(out)
                out.append(event)
        return out

    def _into(self, channel: Channel, text: str, out: list[StreamEvent]) -> None:
        if channel != self._channel:
            self._close(out)
            self._channel, self._window = channel, Window(self.screen.detectors)
        assert self._window is not None
        self._release(channel, self._window, text, out)

    def _close(self, out: list[StreamEvent]) -> None:
        """The current kind of text is over: release all it holds."""
        if self._window is not None and self._channel is not None and self._window.holding:
            self._release(self._channel, self._window, None, out)
        self._channel = self._window = None

    def _release(
        self, channel: Channel, window: Window, text: str | None, out: list[StreamEvent]
    ) -> None:
        """What `window` settles with `text` (None: all it holds), masked, into `out`;
        nothing of it when a policy blocks."""
        try:
            released, matches = window.feed(text) if text is not None else window.flush()
        except ScanTimeout as timeout:
            self.screen.timed_out(timeout.detector, self.verdicts)
            return
        if matches:
            released = self.screen.settle(released, matches, self.verdicts)
        if not released:  # (after a block: what came before the blocked match)
            return
        if self.texts is not None:
            self.texts.append(released)
        kind, index = channel
        if kind == "text":
            out.append(TextDelta(released))
        elif kind == "reasoning":
            out.append(ReasoningDelta(released, origin=self._origin))
        else:
            out.append(ToolArgumentsDelta(index, released))
