"""Finding detectors' matches in text, masking them, and holding a stream's text back only
while a match could still be forming at its end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from extproc.guardrails.detectors import Detector

SEARCH_TIMEOUT = 0.05
"""The most a configured pattern's search over a short text may take (seconds) …"""
SEARCH_TIMEOUT_PER_CHAR = 1e-6
"""… and over a long one, per character: ten times what linear patterns need here; one that
backtracks catastrophically runs out of it."""


def search_timeout(detector: Detector, text: str) -> float | None:
    """How long a search of `text` by `detector` may take (None: no limit, it is linear)."""
    if detector.bounded:
        return None
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
    for detector in detectors:
        if detector.anchors and not any(anchor in text for anchor in detector.anchors):
            continue
        timeout = search_timeout(detector, text)
        try:
            if detector.valid is None:
                for match in detector.pattern.finditer(text, start, timeout=timeout):
                    if match.end() > match.start():
                        found.append(Match(match.start(), match.end(), detector))
            else:
                found += _checked(detector, text, start, timeout)
        except TimeoutError:
            raise ScanTimeout(detector) from None
    found.sort(key=lambda match: (match.start, -match.end))
    return found


def _checked(detector: Detector, text: str, start: int, timeout: float | None) -> list[Match]:
    """The matches whose check holds. Where the greedy match fails it (a card number followed
    by more digits, `4111 1111 1111 1111 55`, or after some, `12 4111 …`), the longest text
    that passes, starting at any place the pattern could start and ending after any whole
    group, stands for it."""
    assert detector.valid is not None
    found: list[Match] = []
    settled = start
    candidates = list(detector.pattern.finditer(text, start, overlapped=True, timeout=timeout))
    for index, candidate in enumerate(candidates):
        if candidate.start() < settled:
            continue
        if detector.valid(candidate.group()):
            best = (candidate.start(), candidate.end())
        else:
            # Its cluster: the candidates that start inside it.
            cluster = [c for c in candidates[index:] if c.start() < candidate.end()]
            options = [
                (begins, end)
                for other in cluster
                for begins, end in _shorter(detector, text, other.start(), other.end(), timeout)
            ]
            if not options:
                continue
            best = max(options, key=lambda span: (span[1] - span[0], -span[0]))
        found.append(Match(best[0], best[1], detector))
        settled = best[1]
    return found


def _shorter(
    detector: Detector, text: str, begins: int, end: int, timeout: float | None
) -> list[tuple[int, int]]:
    """Spans from `begins` that end after a whole group (never inside a longer number), that
    the pattern matches whole and whose check holds."""
    assert detector.valid is not None
    spans = []
    for cut in range(end, begins, -1):
        if cut < end and (text[cut].isalnum() or not text[cut - 1].isalnum()):
            continue
        if cut < end and not detector.pattern.fullmatch(text, begins, cut, timeout=timeout):
            continue
        if detector.valid(text[begins:cut]):
            spans.append((begins, cut))
    return spans


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


def open_from(detectors: Sequence[Detector], text: str, start: int = 0) -> int:
    """Where the earliest match that more text could still make, or lengthen, begins: all
    before it is settled. `len(text)` when nothing is forming at the end.

    A match is open when all the text from its start could begin a longer one (`DE89 3704 `
    holds a complete IBAN match, `DE89 3704`, that the next digits would lengthen). Matches
    are looked for from `start` on (what is before it was settled: no match that starts there
    can still form, whatever comes)."""
    held = len(text)
    for detector in detectors:
        pattern = detector.pattern
        timeout = search_timeout(detector, text)
        begin = max(start, len(text) - detector.max_length)
        try:
            for match in pattern.finditer(text, begin, partial=True, timeout=timeout):
                begins = match.start()
                if begins == len(text) or begins >= held:
                    break
                if match.partial or pattern.fullmatch(text, begins, partial=True, timeout=timeout):
                    held = begins
                    break
        except TimeoutError:
            raise ScanTimeout(detector) from None
    return held


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
        cut = len(text) if final else open_from(self._detectors, text, offset)
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
