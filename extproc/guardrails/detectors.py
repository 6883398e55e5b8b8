"""What guardrails look for in text: the built-in detectors, and the ones a configuration
writes (its own regular expressions, a deny-list of words).

A detector is a pattern, the longest text it can match (how long a stream holds text back
while a match could still be forming), a check that a match is real (a card number's Luhn
digit) and the placeholder that replaces it when masked. Patterns run on the `regex` engine:
it tells a match still forming at the end of a text apart (`partial`), and it bounds the time
one search may take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import regex


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    pattern: regex.Pattern[str]
    max_length: int
    """The longest text a match can span."""
    placeholder: str
    """What a masked match becomes."""
    valid: Callable[[str], bool] | None = None
    """Whether a matched text really is what the detector looks for (checksums)."""
    anchors: str = ""
    """Characters one of which every match holds: a text with none is not searched."""
    bounded: bool = False
    """Runs in linear time whatever the text (the built-in ones): searched without a time
    limit, its cost bounded by the body size alone."""


def luhn_valid(text: str) -> bool:
    """A payment card number: 13 to 19 digits whose Luhn check digit is right."""
    digits = [int(char) for char in text if char.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if position % 2 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """An IBAN whose ISO 7064 mod-97 check holds."""
    compact = "".join(text.split()).upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def ssn_valid(text: str) -> bool:
    """A US Social Security number the SSA could have issued (no 000/666/9xx area, no 00
    group, no 0000 serial)."""
    digits = "".join(char for char in text if char.isdigit())
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _builtin(
    name: str,
    pattern: str,
    max_length: int,
    valid: Callable[[str], bool] | None = None,
    *,
    anchors: str = "",
) -> Detector:
    placeholder = f"[{name.upper()}]"
    return Detector(name, regex.compile(pattern), max_length, placeholder, valid, anchors, True)


_CREDENTIALS = "|".join(
    (
        r"sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_-]{20,}",  # OpenAI, Anthropic
        r"AIza[0-9A-Za-z_-]{35}",  # Google API keys
        r"(?:AKIA|ASIA)[0-9A-Z]{16}",  # AWS access key ids
        r"gh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
        r"xox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
        r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
        # A private key block, whole: what is between the markers is the secret.
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]{0,16000}?-----END (?:[A-Z0-9]+ )*"
        r"PRIVATE KEY-----",
    )
)

BUILTIN: dict[str, Detector] = {
    detector.name: detector
    for detector in (
        _builtin(
            "email",
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}"
            r"(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}(?![A-Za-z0-9-])",
            254,
            anchors="@",
        ),
        _builtin(
            "phone",
            # International (+ and 7 to 15 digits) or North American (10 digits) numbers,
            # with the usual separators.
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
            r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w])",
            32,
        ),
        _builtin("credit_card", r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])", 40, luhn_valid),
        _builtin(
            "iban",
            r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,8}(?![A-Za-z0-9])",
            42,
            iban_valid,
        ),
        _builtin("us_ssn", r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])", 11, ssn_valid, anchors="-"),
        _builtin(
            "ip_address",
            r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
            r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]*\d)"
            r"|(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![0-9A-Fa-f:])",
            39,
            anchors=".:",
        ),
        _builtin("credentials", _CREDENTIALS, 16100),
    )
}
"""The detectors every policy may name."""


def pattern_detector(name: str, pattern: str, max_length: int, *, placeholder: str) -> Detector:
    """A configuration's own regular expression (checked by `pattern_problem` first)."""
    return Detector(name, regex.compile(pattern), max_length, placeholder)


def deny_list_detector(name: str, phrases: Sequence[str], *, placeholder: str) -> Detector:
    """Words or phrases, matched whole and whatever their case; spaces in a phrase match any
    run of white space."""
    alternatives = sorted(
        (r"\s+".join(regex.escape(word) for word in phrase.split()) for phrase in phrases),
        key=len,
        reverse=True,
    )
    pattern = r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)"
    longest = max(len(phrase) for phrase in phrases)
    compiled = regex.compile(pattern, regex.IGNORECASE)
    return Detector(name, compiled, longest * 4, placeholder, bounded=True)  # literals only


def pattern_problem(pattern: str) -> str | None:
    """Why a configuration's regular expression is refused, if it is: it does not compile,
    or it nests unbounded repetition (`(a+)+`, `(\\w*)*`), the shape that backtracks
    catastrophically."""
    try:
        regex.compile(pattern)
    except regex.error as error:
        return f"not a valid regular expression: {error}"
    if _nested_repeat(pattern):
        return (
            "nests unbounded repetition (such as (a+)+), which can take exponential time; "
            "rewrite it without a repeated group that itself repeats"
        )
    return None


def _nested_repeat(pattern: str) -> bool:
    """An unbounded quantifier applied to a group that holds one (read from the pattern's
    text: groups, escapes and character classes are skipped as the engine reads them)."""
    stack: list[bool] = []  # per open group: whether it holds an unbounded quantifier
    holds = False
    closed_holding = False  # the group just closed held one
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            closed_holding = False
            continue
        if char == "[":
            index = _class_end(pattern, index)
            closed_holding = False
            continue
        if char == "(":
            stack.append(holds)
            holds = False
        elif char == ")" and stack:
            closed_holding = holds
            outer = stack.pop()
            holds = outer or holds
            index += 1
            continue
        elif char in "*+" or (char == "{" and _unbounded_brace(pattern, index)):
            if closed_holding:
                return True
            holds = True
        closed_holding = False
        index += 1
    return False


def _class_end(pattern: str, start: int) -> int:
    index = start + 1
    if index < len(pattern) and pattern[index] == "^":
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1
    while index < len(pattern) and pattern[index] != "]":
        index += 2 if pattern[index] == "\\" else 1
    return index + 1


def _unbounded_brace(pattern: str, start: int) -> bool:
    end = pattern.find("}", start)
    return end != -1 and regex.fullmatch(r"\d*,", pattern[start + 1 : end]) is not None
