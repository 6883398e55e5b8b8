"""The package's layers, as the README's layout section draws them: a module imports only
from its own layer or the layers below it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "extproc"
LAYERS = [
    {"cli", "run", "supervisor", "workers", "usage_report", "__main__"},
    {"server", "transport", "counters", "cut_reports"},
    {"exchange", "attempt", "first_attempt", "response", "mcp_call"},
    {"pipeline", "endpoints", "translators", "providers", "spend"},
    {"envoyapi", "envoyconfig"},
    {"telemetry"},
    {"config"},
    {"credentials", "guardrails"},
    {"quota"},
    {
        "errors",
        "headers",
        "contract",
        "usage",
        "sse",
        "eventstream",
        "health",
        "signals",
        "tables",
        "compiled",
    },
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
MOCK = PACKAGE.parent / "mock-provider" / "mockprovider"
"""The fake provider: a distribution of its own, outside the gateway's."""


def imported(path: Path) -> set[str]:
    """The top-level parts of `extproc` that a module imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("extproc"):
            parts = node.module.split(".")
            names |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
    return names


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {path.stem for path in PACKAGE.glob("*.py")} | {
        path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()
    }
    assert parts - {"__init__"} == set(RANK)


def test_modules_import_only_downwards() -> None:
    upward = []
    for path in PACKAGE.rglob("*.py"):
        if "protos" in path.parts or (path.parent == PACKAGE and path.stem == "__init__"):
            continue
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for name in imported(path) - {part}:
            if RANK[name] < RANK[part]:
                upward.append(f"{path.relative_to(PACKAGE)} imports extproc.{name}")
    assert not upward


def test_the_mock_provider_imports_nothing_of_the_gateway() -> None:
    assert not [path.name for path in MOCK.rglob("*.py") if imported(path)]


def test_serving_loads_neither_the_renderer_nor_its_envoy_api_library() -> None:
    """`extproc serve` shares only `contract` with the renderer of Envoy's configuration."""
    probe = (
        "import sys, extproc.cli, extproc.server, extproc.workers; "
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('extproc.envoyconfig', 'envoy_data_plane', 'betterproto'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    assert loaded.strip() == "[]"
