"""The ext_proc message modules in the package are what `make protos` makes of proto/."""

from __future__ import annotations

from pathlib import Path

from tools.protos import TARGET, generate


def files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_generated_modules_are_fresh(tmp_path: Path) -> None:
    generate(tmp_path / "protos")
    fresh, committed = files(tmp_path / "protos"), files(TARGET)
    assert sorted(fresh) == sorted(committed), "run `make protos`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"run `make protos`: {stale}"
