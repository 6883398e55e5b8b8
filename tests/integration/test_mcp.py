"""MCP servers behind the gateway, with real parts only: the official `mcp` SDK's client
(ClientSession over Streamable HTTP) through the real Envoy and processor to MCP servers built
with the official SDK (one answering with SSE streams, one with JSON): tool lists cut per
caller, allowed calls answered, forbidden calls refused with nothing reaching the server, the
server's credential in place of the caller's key, one session across several calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.conftest import provider_document, write_provider_keys
from tests.harness import (
    RunningGateway,
    access_log_lines,
    free_port,
    quota_usage,
    redis_server,
    running_gateway,
    sha256,
    wait_until,
    write_config,
)
from tests.mcp_server import RunningMcpServer, mcp_server

pytestmark = pytest.mark.envoy

READER = "sk-gw-mcp-reader-0123456789"
ADMIN = "sk-gw-mcp-admin-0123456789"
OUTSIDER = "sk-gw-mcp-outsider-0123456789"
SERVER_TOKEN = "mcp-server-token-0123456789"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"},
    },
}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, RunningMcpServer]]:
    with mcp_server() as streaming, mcp_server(json_response=True) as plain:
        yield {"docs": streaming, "wiki": plain}


@pytest.fixture(scope="module")
def gateway(
    servers: dict[str, RunningMcpServer], mock: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("mcp")
    write_provider_keys(directory)
    (directory / "mcp-token").write_text(SERVER_TOKEN + "\n")
    document = {
        "listen": {"max_request_body": "64KiB"},
        "processor": {"message_timeout": "10s"},
        "providers": {"openai": provider_document(mock.url, directory)["openai"]},
        "models": {"chat": {"provider": "openai", "model": "gpt-4o-mini"}},
        "mcp_servers": {
            "docs": {"url": servers["docs"].url, "credential": "${file:mcp-token}"},
            "wiki": {"url": servers["wiki"].url},
        },
        "keys": [
            {
                "id": "reader",
                "sha256": sha256(READER),
                "models": ["*"],
                "mcp": {
                    "docs": {
                        "tools": ["search", "fe*"],
                        "prompts": ["summarize"],
                        "resources": ["docs://public/*"],
                    },
                    "wiki": ["search"],
                },
            },
            {"id": "admin", "sha256": sha256(ADMIN), "models": ["*"], "mcp": {"docs": ["*"]}},
            {"id": "outsider", "sha256": sha256(OUTSIDER), "models": ["*"]},
        ],
        "telemetry": {"access_log": str(directory / "access.log")},
    }
    config = write_config(directory, document)
    with running_gateway(config, directory / "gateway.log") as running:
        yield running


async def session_run(url: str, key: str, steps: Any) -> Any:
    """Run `steps(session)` in an MCP client session through the gateway with `key`."""
    headers = {"authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await steps(session)


def through(gateway: RunningGateway, server: str, key: str, steps: Any) -> Any:
    return asyncio.run(session_run(f"{gateway.url}/mcp/{server}", key, steps))


async def tool_names(session: ClientSession) -> list[str]:
    return sorted(tool.name for tool in (await session.list_tools()).tools)


@pytest.mark.parametrize("server", ["docs", "wiki"])
def test_a_tool_list_holds_only_the_tools_the_caller_may_call(
    server: str, gateway: RunningGateway
) -> None:
    """Over an SSE answer (docs) and a JSON one (wiki)."""
    expected = {"docs": ["fetch", "search"], "wiki": ["search"]}[server]
    assert through(gateway, server, READER, tool_names) == expected
    if server == "docs":
        everything = ["count", "delete_everything", "fetch", "flaky", "search"]
        assert through(gateway, server, ADMIN, tool_names) == everything


def test_prompts_and_resources_are_cut_and_refused_where_a_grant_names_them(
    gateway: RunningGateway,
) -> None:
    async def listed(session: ClientSession) -> tuple[list[str], list[str]]:
        prompts = sorted(p.name for p in (await session.list_prompts()).prompts)
        resources = sorted(str(r.uri) for r in (await session.list_resources()).resources)
        return prompts, resources

    assert through(gateway, "docs", READER, listed) == (["summarize"], ["docs://public/readme"])
    # A grant that names tools only leaves prompts and resources as the server has them.
    assert through(gateway, "docs", ADMIN, listed) == (
        ["secret_plan", "summarize"],
        ["docs://internal/salaries", "docs://public/readme"],
    )

    async def refused(session: ClientSession) -> list[str]:
        errors = []
        for attempt in (
            session.get_prompt("secret_plan"),
            session.read_resource("docs://internal/salaries"),
        ):
            with pytest.raises(MCPError) as error:
                await attempt
            errors.append(str(error.value))
        readme = await session.read_resource("docs://public/readme")
        assert readme.contents[0].text == "read me"  # type: ignore[union-attr]
        return errors

    assert through(gateway, "docs", READER, refused) == [
        "Unknown prompt: secret_plan",
        "Resource not found: docs://internal/salaries",
    ]


def test_an_allowed_call_is_answered_with_the_servers_credential_never_the_callers_key(
    gateway: RunningGateway, servers: dict[str, RunningMcpServer]
) -> None:
    docs = servers["docs"]
    docs.authorizations.clear()

    async def steps(session: ClientSession) -> list[str]:
        first = await session.call_tool("search", {"query": "envoy"})
        second = await session.call_tool("fetch", {"document": "intro"})
        return [first.content[0].text, second.content[0].text]  # type: ignore[union-attr]

    assert through(gateway, "docs", READER, steps) == [
        "3 documents about envoy",
        "the text of intro",
    ]
    assert docs.calls[-2:] == [("search", {"query": "envoy"}), ("fetch", {"document": "intro"})]
    assert docs.authorizations and set(docs.authorizations) == {f"Bearer {SERVER_TOKEN}"}
    wiki = servers["wiki"]
    wiki.authorizations.clear()
    through(gateway, "wiki", READER, tool_names)
    assert wiki.authorizations and set(wiki.authorizations) == {None}  # no credential set


def test_a_streamed_tool_answer_is_relayed_event_by_event(
    gateway: RunningGateway, servers: dict[str, RunningMcpServer]
) -> None:
    """The tool waits, after its first progress event, until the client got it: the answer
    finishes only if the gateway passed that event on before the stream ended."""
    docs = servers["docs"]
    docs.progress_seen.clear()
    progress: list[float] = []

    async def noted(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)
        docs.progress_seen.set()

    async def steps(session: ClientSession) -> str:
        answer = await session.call_tool("count", {"to": 3}, progress_callback=noted)
        return answer.content[0].text  # type: ignore[union-attr]

    assert through(gateway, "docs", ADMIN, steps) == "counted to 3"
    assert progress == [1, 2, 3]


def test_the_servers_own_stream_and_the_sessions_end_pass_through(
    gateway: RunningGateway,
) -> None:
    headers = ACCEPT | {"authorization": f"Bearer {READER}"}
    url = f"{gateway.url}/mcp/docs"
    opened = httpx.post(url, json=INITIALIZE, headers=headers)
    headers |= {"mcp-session-id": opened.headers["mcp-session-id"]}
    headers |= {"mcp-protocol-version": "2025-06-18", "accept": "text/event-stream"}
    with httpx.stream("GET", url, headers=headers, timeout=10) as listening:
        assert listening.status_code == 200
        assert listening.headers["content-type"].startswith("text/event-stream")
    assert httpx.delete(url, headers=headers).status_code == 200


def test_a_forbidden_call_is_refused_and_never_reaches_the_server(
    gateway: RunningGateway, servers: dict[str, RunningMcpServer]
) -> None:
    docs = servers["docs"]
    before = len(docs.calls)

    async def steps(session: ClientSession) -> str:
        with pytest.raises(MCPError) as refused:
            await session.call_tool("delete_everything", {})
        # The session goes on: the next allowed call is answered.
        answer = await session.call_tool("search", {"query": "after"})
        assert answer.content[0].text == "3 documents about after"  # type: ignore[union-attr]
        return str(refused.value)

    assert "Unknown tool: delete_everything" in through(gateway, "docs", READER, steps)
    assert docs.calls[before:] == [("search", {"query": "after"})]


def test_a_caller_without_a_grant_reaches_no_server(gateway: RunningGateway) -> None:
    answer = httpx.post(
        f"{gateway.url}/mcp/docs",
        json=INITIALIZE,
        headers=ACCEPT | {"authorization": f"Bearer {OUTSIDER}"},
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == -32001
    assert "may not use MCP server 'docs'" in answer.json()["error"]["message"]
    unknown = httpx.post(
        f"{gateway.url}/mcp/nowhere",
        json=INITIALIZE,
        headers=ACCEPT | {"authorization": f"Bearer {ADMIN}"},
    )
    assert unknown.status_code == 404 and unknown.json()["jsonrpc"] == "2.0"
    anonymous = httpx.post(f"{gateway.url}/mcp/docs", json=INITIALIZE, headers=ACCEPT)
    assert anonymous.status_code == 401 and "error" in anonymous.json()


def test_one_session_serves_several_calls_and_ends_with_delete(
    gateway: RunningGateway, servers: dict[str, RunningMcpServer]
) -> None:
    headers = ACCEPT | {"authorization": f"Bearer {READER}"}
    url = f"{gateway.url}/mcp/docs"
    opened = httpx.post(url, json=INITIALIZE, headers=headers)
    assert opened.status_code == 200
    session = opened.headers["mcp-session-id"]
    headers |= {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    notified = httpx.post(
        url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
    )
    assert notified.status_code == 202
    listed = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers
    )
    assert listed.status_code == 200 and '"search"' in listed.text
    assert "delete_everything" not in listed.text
    ended = httpx.delete(url, headers=headers)
    assert ended.status_code == 200
    gone = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, headers=headers
    )
    assert gone.status_code == 404  # the server forgot the session


@pytest.mark.parametrize(
    ("body", "version", "code"),
    [
        (b"{not json", "2025-06-18", -32700),
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]', "2025-06-18", -32600),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}}',
            "2025-06-18",
            -32602,
        ),
        (b'{"id": 1, "method": "tools/list"}', "2025-06-18", -32600),
    ],
)
def test_malformed_messages_get_json_rpc_errors(
    body: bytes, version: str, code: int, gateway: RunningGateway
) -> None:
    answer = httpx.post(
        f"{gateway.url}/mcp/docs",
        content=body,
        headers=ACCEPT | {"authorization": f"Bearer {ADMIN}", "mcp-protocol-version": version},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code


def test_an_oversized_message_gets_a_json_rpc_error(gateway: RunningGateway) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "search", "arguments": {"query": "x" * 100_000}},
    }
    answer = httpx.post(
        f"{gateway.url}/mcp/docs", json=call, headers=ACCEPT | {"authorization": f"Bearer {ADMIN}"}
    )
    assert answer.status_code == 413
    assert answer.json()["jsonrpc"] == "2.0" and answer.json()["error"]["code"] == -32600
    assert "larger than the gateway accepts" in answer.json()["error"]["message"]


def test_an_older_protocols_batch_is_checked_message_by_message(
    gateway: RunningGateway, servers: dict[str, RunningMcpServer]
) -> None:
    docs = servers["docs"]
    before = len(docs.calls)
    batch = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "a"}},
        },
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "delete_everything"},
        },
    ]
    headers = ACCEPT | {"authorization": f"Bearer {READER}", "mcp-protocol-version": "2025-03-26"}
    answer = httpx.post(f"{gateway.url}/mcp/docs", json=batch, headers=headers)
    assert answer.status_code == 200
    by_id = {message["id"]: message["error"] for message in answer.json()}
    assert by_id[2]["message"] == "Unknown tool: delete_everything"
    assert by_id[1]["message"].startswith("Not sent")
    assert len(docs.calls) == before


def test_each_call_is_logged_with_its_server_method_tool_and_outcome(
    gateway: RunningGateway,
) -> None:
    config = Path(gateway.log_path).parent / "gateway.yaml"
    before = len(access_log_lines(config))

    async def admin(session: ClientSession) -> None:
        await session.call_tool("search", {"query": "logs"})
        await session.call_tool("flaky", {})

    async def reader(session: ClientSession) -> None:
        with pytest.raises(MCPError):
            await session.call_tool("delete_everything", {})

    through(gateway, "docs", ADMIN, admin)
    through(gateway, "docs", READER, reader)

    def calls() -> list[dict[str, Any]] | None:
        lines = [json.loads(line) for line in access_log_lines(config)[before:]]
        found = [line for line in lines if line.get("mcp_method") == "tools/call"]
        return found if len(found) == 3 else None

    logged = wait_until(calls, "three tool calls were not logged")
    assert [(line["mcp_tool"], line["mcp_outcome"]) for line in logged] == [
        ("search", "ok"),
        ("flaky", "failed"),
        ("delete_everything", "refused"),
    ]
    assert {line["mcp_server"] for line in logged} == {"docs"}
    assert logged[0]["key_id"] == "admin" and logged[2]["key_id"] == "reader"
    text = config.with_name("access.log").read_text() + Path(gateway.log_path).read_text()
    for secret in (READER, ADMIN, OUTSIDER, SERVER_TOKEN):
        assert secret not in text


# Tool-call quotas, exact across two processors sharing Redis.

LIMITED = "sk-gw-mcp-limited-0123456789"
SEARCHES = 5


@pytest.fixture(scope="module")
def shared(
    servers: dict[str, RunningMcpServer], mock: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, RunningGateway, Path]]:
    directory = tmp_path_factory.mktemp("mcp-quota")
    write_provider_keys(directory)
    with redis_server() as redis:
        document = {
            "processor": {"message_timeout": "10s"},
            "providers": {"openai": provider_document(mock.url, directory)["openai"]},
            "models": {"chat": {"provider": "openai", "model": "gpt-4o-mini"}},
            "mcp_servers": {
                "docs": {"url": servers["docs"].url},
                "down": {"url": f"http://127.0.0.1:{free_port()}/mcp"},
            },
            "quota": {"store": redis.url},
            "keys": [
                {
                    "id": "limited",
                    "sha256": sha256(LIMITED),
                    "models": ["*"],
                    "mcp": {"docs": ["*"], "down": ["*"]},
                    "limits": [
                        {"tool_calls": SEARCHES, "per": "1h", "tool": "docs/search"},
                        {"tool_calls": 100, "per": "1h"},
                        {"concurrent": 50, "tool": "docs/*"},
                    ],
                }
            ],
            "telemetry": {"access_log": str(directory / "access.log")},
        }
        config = write_config(directory, document)
        with (
            running_gateway(config, directory / "one.log") as one,
            running_gateway(config, directory / "two.log") as two,
        ):
            yield one, two, config


def tool_calls_used(config: Path, gateway: RunningGateway, tool: str = "docs/search") -> float:
    rows = quota_usage(config, gateway.processor)
    return float(rows[f"key:limited tool_calls 1h {tool}"]["used"])


def test_tool_call_limits_hold_exactly_across_two_processors(
    shared: tuple[RunningGateway, RunningGateway, Path], servers: dict[str, RunningMcpServer]
) -> None:
    one, two, config = shared
    docs = servers["docs"]
    ran_before = sum(1 for name, _ in docs.calls if name == "search")

    async def search(gateway: RunningGateway, query: str) -> str:
        async def steps(session: ClientSession) -> str:
            try:
                answer = await session.call_tool("search", {"query": query})
            except MCPError as refused:
                return f"refused: {refused}"
            return answer.content[0].text  # type: ignore[union-attr]

        return await session_run(f"{gateway.url}/mcp/docs", LIMITED, steps)  # type: ignore[no-any-return]

    async def race() -> list[str]:
        return await asyncio.gather(
            *(search(one if index % 2 else two, f"q{index}") for index in range(12))
        )

    outcomes = asyncio.run(race())
    answered = [outcome for outcome in outcomes if not outcome.startswith("refused")]
    refusals = [outcome for outcome in outcomes if outcome.startswith("refused")]
    assert len(answered) == SEARCHES and len(refusals) == 12 - SEARCHES
    assert all("Limit reached" in refusal for refusal in refusals)
    ran = sum(1 for name, _ in docs.calls if name == "search") - ran_before
    assert ran == SEARCHES, "a refused call never reaches the server"
    assert tool_calls_used(config, one) == SEARCHES
    # Other tools have their own room.
    fetched = through(one, "docs", LIMITED, lambda s: s.call_tool("fetch", {"document": "a"}))
    assert fetched.content[0].text == "the text of a"


def test_a_refused_call_says_when_to_retry(
    shared: tuple[RunningGateway, RunningGateway, Path],
) -> None:
    one, _, _ = shared
    headers = ACCEPT | {"authorization": f"Bearer {LIMITED}"}
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "search"}}
    for _ in range(SEARCHES + 1):  # (the limit may be spent already)
        answer = httpx.post(f"{one.url}/mcp/docs", json=call, headers=headers)
        if "error" in answer.json():
            break
    error = answer.json()["error"]
    assert answer.status_code == 200 and answer.json()["id"] == 7
    assert error["code"] == -32001 and error["data"]["retry_after"] > 0
    assert int(answer.headers["retry-after"]) == error["data"]["retry_after"]
    assert answer.headers["x-ratelimit-remaining-tool-calls"] == "0"
    assert answer.headers["x-ratelimit-limit-tool-calls"] == str(SEARCHES)


def test_a_failed_tool_call_is_refunded(
    shared: tuple[RunningGateway, RunningGateway, Path], servers: dict[str, RunningMcpServer]
) -> None:
    one, _, config = shared
    before = float(quota_usage(config, one.processor)["key:limited tool_calls 1h *"]["used"])

    async def steps(session: ClientSession) -> bool:
        result = await session.call_tool("flaky", {})
        return result.is_error

    assert through(one, "docs", LIMITED, steps) is True
    assert servers["docs"].calls[-1] == ("flaky", {})
    wait_until(
        lambda: (
            float(quota_usage(config, one.processor)["key:limited tool_calls 1h *"]["used"])
            == before
        ),
        "a failed tool call stayed charged",
    )


def test_a_server_that_is_down_gets_a_json_rpc_error_and_nothing_is_charged(
    shared: tuple[RunningGateway, RunningGateway, Path],
) -> None:
    one, _, config = shared
    before = float(quota_usage(config, one.processor)["key:limited tool_calls 1h *"]["used"])
    headers = ACCEPT | {"authorization": f"Bearer {LIMITED}"}
    call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "anything"}}
    answer = httpx.post(f"{one.url}/mcp/down", json=call, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["id"] == 9 and answer.json()["error"]["code"] == -32603
    assert "'down' is unavailable" in answer.json()["error"]["message"]
    wait_until(
        lambda: (
            float(quota_usage(config, one.processor)["key:limited tool_calls 1h *"]["used"])
            == before
        ),
        "a call to a server that is down stayed charged",
    )
