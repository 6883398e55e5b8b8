"""Provider keys by reference (`${env:NAME}`, `${file:/path}`), resolved once at load."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

REFERENCE = re.compile(r"^\$\{(env|file):([^}]+)\}$")


class Secret:
    """A credential that prints as [REDACTED] wherever it ends up by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('[REDACTED]')"

    __str__ = __repr__


def resolve_secret(reference: str, *, base_dir: Path, environ: Mapping[str, str]) -> Secret:
    """Read the value a reference points at; errors name the reference, never a value."""
    match = REFERENCE.match(reference)
    if match is None:
        raise ValueError("must be a reference: ${env:NAME} or ${file:/path}")
    source, name = match.groups()
    if source == "env":
        if name not in environ:
            raise ValueError(f"environment variable {name} is not set")
        value = environ[name]
    else:
        path = base_dir / name
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"cannot read {path}: {error.strerror}") from None
    value = value.strip()
    if not value:
        raise ValueError(f"{source} {name} is empty")
    if any(char in value for char in "\r\n\0"):
        raise ValueError(f"{source} {name} contains a line break or NUL")
    return Secret(value)
