"""Keys from a directory: one file per key, named by its id, holding its entry as under
`keys` (the `id` may be left out). A mounted Kubernetes Secret fits: issuing a key is adding
a file, revoking it is removing the file; the processor follows the directory as it follows
the configuration file.

Hidden entries are skipped: Kubernetes keeps a Secret's versions in `..data` and
`..2026_12_05…` beside the per-key symlinks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from extproc.config.documents import describe, read_yaml
from extproc.config.schema import KeySpec

MAX_FILE = 64 * 1024
"""A key entry is a few lines; anything far larger is not one."""


def key_file_entries(directory: Path) -> list[Path]:
    """The files that hold keys, in name order."""
    return sorted(
        path for path in directory.iterdir() if not path.name.startswith(".") and path.is_file()
    )


def read_key_files(directory: Path) -> tuple[list[tuple[str, KeySpec]], list[tuple[str, str]]]:
    """The keys in `directory`, each with the path its problems are reported under
    (`key_files/<name>`), and the problems."""
    keys: list[tuple[str, KeySpec]] = []
    problems: list[tuple[str, str]] = []
    try:
        files = key_file_entries(directory)
    except OSError as error:
        return [], [("key_files", f"cannot read the directory: {error.strerror}")]
    for path in files:
        label = f"key_files/{path.name}"
        try:
            document = _entry(path)
            if document.setdefault("id", path.name) != path.name:
                raise ValueError(f"id {document['id']!r} differs from the file name")
            keys.append((label, KeySpec.model_validate(document)))
        except ValidationError as error:
            for item in error.errors():
                where, message = describe(item)
                problems.append((f"{label}.{where}" if where else label, message))
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
            problems.append((label, str(error)))
    return keys, problems


def _entry(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        data = file.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise ValueError("larger than a key entry can be (64 KiB)")
    document = read_yaml(data.decode("utf-8"))
    if not isinstance(document, dict):
        raise ValueError("must hold the key's entry: a mapping with sha256, models, …")
    return document
