"""Templates over an identity's claims: `user:{sub}`, `{groups[0]}`, `{realm.roles[1]}`.

A claim that is missing (or an index past a list's end) leaves the template without a value:
the rule using it does not apply to that caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_FIELD = re.compile(r"\{([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)(?:\[(\d+)\])?\}")


@dataclass(frozen=True, slots=True)
class ClaimTemplate:
    text: str
    fields: tuple[tuple[str, tuple[str, ...], int | None], ...]
    """Each placeholder: its text, the claim's path, and the list index it takes."""

    @classmethod
    def parse(cls, text: str) -> ClaimTemplate:
        """Raises ValueError for a brace that opens no placeholder."""
        fields = tuple(
            (match.group(0), tuple(match.group(1).split(".")), _index(match.group(2)))
            for match in _FIELD.finditer(text)
        )
        rest = _FIELD.sub("", text)
        if "{" in rest or "}" in rest:
            raise ValueError("placeholders look like {claim}, {claim[0]} or {claim.field}")
        return cls(text, fields)

    @property
    def literal(self) -> bool:
        return not self.fields

    def render(self, claims: Mapping[str, Any]) -> str | None:
        text = self.text
        for placeholder, path, index in self.fields:
            value = claim_value(claims, path, index)
            if value is None:
                return None
            text = text.replace(placeholder, value, 1)
        return text


def claim_value(claims: Mapping[str, Any], path: tuple[str, ...], index: int | None) -> str | None:
    """A claim as text (a number or boolean as JSON writes it); None when absent."""
    value: Any = claims
    for name in path:
        if not isinstance(value, Mapping) or name not in value:
            return None
        value = value[name]
    if index is not None:
        if not isinstance(value, list) or index >= len(value):
            return None
        value = value[index]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a Struct carries every number as a double
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _index(text: str | None) -> int | None:
    return int(text) if text is not None else None
