"""MCP servers as the file writes them → runtime `McpServer`s, and the checks that every
server a key or identity rule names exists."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from extproc.config.model import McpServer
from extproc.config.schema import GatewaySpec, KeySpec, McpServerSpec
from extproc.config.secrets import resolve_secret

Problems = list[tuple[str, str]]


def compile_mcp_servers(
    spec: GatewaySpec,
    keys: list[tuple[str, KeySpec]],
    directory: Path,
    environ: Mapping[str, str] | None,
    problems: Problems,
) -> dict[str, McpServer]:
    """The servers by name (`environ` None: references are checked, not read)."""
    servers = {
        name: _server(name, server, directory, environ, problems)
        for name, server in spec.mcp_servers.items()
    }
    granted = [(f"{where}.mcp", key.mcp) for where, key in keys]
    granted += [
        (f"identity.rules.{index}.mcp", rule.mcp) for index, rule in enumerate(spec.identity.rules)
    ]
    for where, grant in granted:
        for name in grant:
            if name not in servers:
                known = ", ".join(sorted(servers)) or "none"
                problems.append((f"{where}.{name}", f"unknown MCP server (known: {known})"))
    return servers


def _server(
    name: str,
    spec: McpServerSpec,
    directory: Path,
    environ: Mapping[str, str] | None,
    problems: Problems,
) -> McpServer:
    url = urlsplit(spec.url)
    where = f"mcp_servers.{name}"
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        problems.append((f"{where}.url", "has an invalid port"))
        port = 0
    if not url.hostname:
        problems.append((f"{where}.url", "has no host"))
    credential = None
    if spec.credential is not None and environ is not None:
        try:
            credential = resolve_secret(spec.credential, base_dir=directory, environ=environ)
        except ValueError as error:
            problems.append((f"{where}.credential", str(error)))
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return McpServer(
        name,
        url.scheme,
        url.hostname or "",
        port,
        path,
        credential,
        tuple(spec.headers.items()),
        spec.timeout,
        spec.connect_timeout,
        spec.ca_file,
    )
