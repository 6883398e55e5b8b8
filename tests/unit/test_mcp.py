"""MCP as the gateway reads it: posts, lists cut to grants, failed tool calls, the headers a
server gets, and the grants in the configuration."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from extproc.config import ConfigError, parse_gateway
from extproc.config.model import ServerGrant
from extproc.pipeline.mcp import (
    McpRefusal,
    failed_calls,
    filtered_event,
    filtered_lists,
    read_post,
    to_server,
    unknown,
)
from extproc.sse import EventParser

CONFIG = """
providers:
  openai: {kind: openai, base_url: https://api.openai.com, api_key: "${env:K}"}
models:
  m: {provider: openai, model: gpt-4o}
mcp_servers:
  docs: {url: "https://mcp.example.com:8443/v1/mcp?tenant=a", credential: "${env:T}",
         headers: {x-tenant: a}}
keys:
  - {id: k, sha256: "%s", models: ["*"], mcp: {docs: [search]}}
""" % ("a" * 64)
ENV = {"K": "sk-provider", "T": "server-token"}


def test_a_post_names_what_it_uses() -> None:
    post = read_post(
        b'{"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "a://b"}}',
        "2025-06-18",
    )
    assert post.calls[0].asks == ("resources", "a://b") and not post.batch
    call = read_post(
        b'{"jsonrpc": "2.0", "id": 4, "method": "tools/call",'
        b' "params": {"name": "search", "arguments": {"q": 1}}}',
        None,
    ).calls[0]
    assert (call.tool, call.arguments) == ("search", {"q": 1})
    assert orjson.loads(orjson.dumps(unknown(call)))["error"]["message"] == "Unknown tool: search"


@pytest.mark.parametrize(
    ("body", "version", "code"),
    [
        (b"{", "2025-06-18", -32700),
        (b"[]", "2025-03-26", -32600),
        (b'[{"jsonrpc": "2.0", "method": "ping", "id": 1}]', None, -32600),
        (b'{"jsonrpc": "1.0", "method": "ping"}', None, -32600),
        (b'{"jsonrpc": "2.0", "method": "prompts/get", "id": 1}', None, -32602),
    ],
)
def test_what_is_not_mcp_json_rpc_is_refused(body: bytes, version: str | None, code: int) -> None:
    with pytest.raises(McpRefusal) as refused:
        read_post(body, version)
    assert refused.value.code == code and refused.value.status == 400


def test_lists_are_cut_to_the_grant_and_events_rewritten_only_when_cut() -> None:
    grant = ServerGrant(("search",), prompts=None, resources=("docs://public/*",))
    answer = {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {
            "tools": [{"name": "search"}, {"name": "delete"}],
            "prompts": [{"name": "anything"}],
            "resources": [{"uri": "docs://public/a"}, {"uri": "docs://internal/b"}],
            "resourceTemplates": [{"uriTemplate": "docs://internal/{x}"}],
        },
    }
    cut = filtered_lists(answer, grant.allows)
    assert cut["result"] == {
        "tools": [{"name": "search"}],
        "prompts": [{"name": "anything"}],
        "resources": [{"uri": "docs://public/a"}],
        "resourceTemplates": [],
    }
    assert filtered_lists({"result": {"tools": [{"name": "search"}]}}, grant.allows) is None
    stream = b"event: message\nid: 7\ndata: " + orjson.dumps(answer) + b"\n\n: ping\n\n"
    blocks = EventParser().feed(stream)
    rewritten = filtered_event(blocks[0], grant.allows)
    assert rewritten.startswith(b"event: message\nid: 7\ndata: ") and b"delete" not in rewritten
    assert filtered_event(blocks[1], grant.allows) == b": ping\n\n"


def test_a_tool_call_failed_when_its_answer_says_so() -> None:
    post = read_post(
        b'{"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "x"}}', None
    )
    assert failed_calls({"jsonrpc": "2.0", "id": 5, "error": {"code": -1}}, post)
    assert failed_calls({"jsonrpc": "2.0", "id": 5, "result": {"isError": True}}, post)
    assert not failed_calls({"jsonrpc": "2.0", "id": 5, "result": {"content": []}}, post)
    assert not failed_calls({"jsonrpc": "2.0", "id": 6, "error": {"code": -1}}, post)


def test_a_server_gets_its_credential_and_the_transports_headers_only() -> None:
    server = parse_gateway(CONFIG, source=Path("gw.yaml"), environ=ENV).mcp_servers["docs"]
    assert (server.authority, server.path, server.cluster) == (
        "mcp.example.com:8443",
        "/v1/mcp?tenant=a",
        "mcp_docs",
    )
    present = [":path", "authorization", "cookie", "mcp-session-id", "accept", "x-request-id"]
    set_headers, removed = to_server(present, server)
    assert ("authorization", "Bearer server-token") in set_headers
    assert (":path", "/v1/mcp?tenant=a") in set_headers and ("x-tenant", "a") in set_headers
    assert removed == ["cookie"]  # authorization is set anew; x-request-id is Envoy's


def test_grants_name_known_servers_and_every_grant_must_allow() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_gateway(
            CONFIG.replace("mcp: {docs: [search]}", "mcp: {wiki: [search]}"),
            source=Path("gw.yaml"),
            environ=ENV,
        )
    assert "unknown MCP server" in dict(raised.value.problems)["keys.0.mcp.wiki"]
    principal = parse_gateway(CONFIG, source=Path("gw.yaml"), environ=ENV).principals["a" * 64]
    assert principal.may_reach("docs") and principal.may_reach("docs", "tools", "search")
    assert not principal.may_reach("docs", "tools", "delete")
    assert principal.may_reach("docs", "prompts", "anything")  # not named: not filtered
    assert not principal.may_reach("wiki")
