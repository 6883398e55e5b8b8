"""Finding detectors' matches in text, masking them, and holding a stream's text back only
while a match could still be forming at its end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from extproc.guardrails.detectors import Detector

SEARCH_TIMEOUT = 0.05
"""The most one detector's search over a short text may take (seconds) …"""
SEARCH_TIMEOUT_PER_CHAR = 1e-6
"""… and over a long one, per character: ten times what the built-in detectors need (they run
in linear time); a pattern that backtracks catastrophically runs out of it."""


def search_timeout(text: str) -> float:
    return SEARCH_TIMEOUT + len(text) * SEARCH_TIMEOUT_PER_CHAR


class ScanTimeout(Exception):
    """A detector's search took longer than `SEARCH_TIMEOUT`."""

    def __init__(self, detector: Detector) -> None:
        super().__init__(f"detector {detector.name} ran out of time")
        self.detector = detector


@dataclass(frozen=True, slots=True)
class Match:
    start: int
    end: int
    detector: Detector


def find(detectors: Sequence[Detector], text: str, *, start: int = 0) -> list[Match]:
    """Every real match in `text` from `start` on, by position."""
    found: list[Match] = []
    timeout = search_timeout(text)
    for detector in detectors:
        if detector.anchor is not None and detector.anchor not in text:
            continue
        try:
            for match in detector.pattern.finditer(text, start, timeout=timeout):
                if match.end() > match.start() and _real(detector, match.group()):
                    found.append(Match(match.start(), match.end(), detector))
        except TimeoutError:
            raise ScanTimeout(detector) from None
    found.sort(key=lambda match: (match.start, -match.end))
    return found


def masked(text: str, matches: Sequence[Match]) -> str:
    """The text with each match (sorted by position) replaced by its detector's
    placeholder; overlapping matches become one placeholder, the first's."""
    pieces: list[str] = []
    written = 0
    for match in matches:
        if match.end <= written:
            continue
        pieces.append(text[written : max(written, match.start)])
        if match.start >= written:
            pieces.append(match.detector.placeholder)
        written = match.end
    pieces.append(text[written:])
    return "".join(pieces)


def open_from(detectors: Sequence[Detector], text: str) -> int:
    """Where the earliest match that more text could still make, or lengthen, begins: all
    before it is settled. `len(text)` when nothing is forming at the end.

    A match is open when all the text from its start could begin a longer one (`DE89 3704 `
    holds a complete IBAN match, `DE89 3704`, that the next digits would lengthen)."""
    held = len(text)
    timeout = search_timeout(text)
    for detector in detectors:
        pattern = detector.pattern
        begin = max(0, len(text) - detector.max_length)
        try:
            for match in pattern.finditer(text, begin, partial=True, timeout=timeout):
                start = match.start()
                if start == len(text) or start >= held:
                    break
                if match.partial or pattern.fullmatch(text, start, partial=True, timeout=timeout):
                    held = start
                    break
        except TimeoutError:
            raise ScanTimeout(detector) from None
    return held


def _real(detector: Detector, text: str) -> bool:
    return detector.valid is None or detector.valid(text)


TAIL = 64
"""Released text kept for the look-behind of matches that begin after it."""


class Window:
    """One kind of a stream's text (the answer's text, one tool call's arguments): what may
    go to the client now, and what waits for the next chunk."""

    __slots__ = ("_detectors", "_held", "_tail")

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self._detectors = detectors
        self._held = ""
        self._tail = ""

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def feed(self, text: str) -> tuple[str, list[Match]]:
        """The text settled now (as streamed, unmasked), with the matches in it (positions
        in that text)."""
        return self._release(self._held + text, final=False)

    def flush(self) -> tuple[str, list[Match]]:
        """All that is held: no more of this text is coming."""
        return self._release(self._held, final=True)

    def _release(self, buffered: str, *, final: bool) -> tuple[str, list[Match]]:
        text = self._tail + buffered
        offset = len(self._tail)
        cut = len(text) if final else max(offset, open_from(self._detectors, text))
        matches = find(self._detectors, text, start=offset)
        # A settled match that runs past the cut waits whole for the next chunk.
        straddling = True
        while straddling:
            straddling = False
            for match in matches:
                if match.start < cut < match.end:
                    cut, straddling = max(offset, match.start), True
        released = text[offset:cut]
        self._held = text[cut:]
        self._tail = (self._tail + released)[-TAIL:]
        inside = [
            Match(match.start - offset, match.end - offset, match.detector)
            for match in matches
            if match.end <= cut
        ]
        return released, inside
