"""Streams through a real Envoy: on time, usage never lost, budgets that stop a stream."""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from extproc.usage import estimate_tokens
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.harness import (
    HTTP,
    MockProvider,
    RunningGateway,
    assert_openai_error,
    counter_used,
    envoy_only,
    running_gateway,
    settles_to,
    sha256,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.envoy

KEY = "sk-gw-stream-unlimited-0123456789"
BUDGET_KEY = "sk-gw-stream-budget-0123456789"
BUDGET = 40
PROMPT = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def config(mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("streaming")
    (directory / "openai").write_text(OPENAI_KEY)
    (directory / "anthropic").write_text(ANTHROPIC_KEY)
    document = {
        "processor": {"message_timeout": "10s"},
        "providers": {
            "openai": {"kind": "openai", "base_url": mock.url, "api_key": "${file:openai}"},
            "anthropic": {
                "kind": "anthropic",
                "base_url": mock.url,
                "api_key": "${file:anthropic}",
            },
        },
        "models": {
            "chat": {"provider": "openai", "model": "gpt-4o-mini"},
            "short": {"provider": "openai", "model": "gpt-4o-mini", "max_output_tokens": 5},
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
        },
        "keys": [
            {
                "id": "app",
                "sha256": sha256(KEY),
                "models": ["*"],
                "limits": [{"tokens": 10**9, "per": "1d"}, {"concurrent": 100}],
            },
            {
                "id": "budget",
                "sha256": sha256(BUDGET_KEY),
                "models": ["*"],
                "limits": [{"tokens": BUDGET, "per": "1d"}],
            },
        ],
    }
    return write_config(directory, document)


@pytest.fixture(scope="module")
def gateway(config: Path) -> Iterator[RunningGateway]:
    with running_gateway(config, config.parent / "gateway.log") as running:
        yield running


def used(config: Path, gateway: RunningGateway, key: str, metric: str, per: str | None) -> float:
    return counter_used(config, key, metric, per, gateway.processor)


def stream_events(
    url: str, body: dict[str, Any], headers: dict[str, str], path: str = "/v1/chat/completions"
) -> list[tuple[float, bytes]]:
    """Each SSE block as it arrived, with its arrival time."""
    arrived: list[tuple[float, bytes]] = []
    buffer = b""
    with HTTP.stream("POST", url + path, json=body, headers=headers) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_raw():
            buffer += chunk
            *blocks, buffer = buffer.split(b"\n\n")
            arrived += [(time.monotonic(), block) for block in blocks]
    assert buffer == b""
    return arrived


def payloads(events: list[tuple[float, bytes]]) -> list[Any]:
    return [orjson.loads(b.removeprefix(b"data: ")) for _, b in events if b != b"data: [DONE]"]


def auth(key: str = KEY, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **extra}


def test_events_arrive_as_the_provider_sends_them(
    gateway: RunningGateway, config: Path, mock: MockProvider, tmp_path: Path
) -> None:
    body = {"model": "chat", "stream": True, "messages": PROMPT}
    pacing = {"x-mock-chunk-delay-ms": "150", "x-mock-words": "8"}
    with envoy_only(config, tmp_path, processor=None) as (_, alone_url):
        # Envoy alone: the client talks to the provider with the provider's own key.
        direct = {
            "x-extproc-route": "openai",
            "authorization": f"Bearer {OPENAI_KEY}",
            "accept-encoding": "identity",  # read raw: no provider gzip to undo
        }
        alone = stream_events(alone_url, body | {"model": "gpt-4o-mini"}, direct | pacing)
    through = stream_events(gateway.url, body, auth(**pacing))

    assert len(through) == len(alone) == 11  # the role chunk, 8 words, the finish, [DONE]

    def gaps(events: list[tuple[float, bytes]]) -> list[float]:
        return [later[0] - earlier[0] for earlier, later in itertools.pairwise(events)]

    def batched(events: list[tuple[float, bytes]]) -> int:
        """Events that came together with the one before (a gap under half the pacing)."""
        return sum(gap < 0.075 for gap in gaps(events)[:-1])

    # Each event comes on its own, as paced by the provider: no batching, no holding back.
    # A stalled machine can bunch two events in either run, so both compare with Envoy alone.
    differences = [abs(a - b) for a, b in zip(gaps(through), gaps(alone), strict=True)]
    assert statistics.median(differences) < 0.075, (gaps(through), gaps(alone))
    assert batched(through) <= batched(alone) + 1, (gaps(through), gaps(alone))


def test_usage_is_requested_upstream_and_hidden_from_the_client(
    gateway: RunningGateway, config: Path, mock: MockProvider
) -> None:
    before = used(config, gateway, "app", "tokens", "1d")
    events = stream_events(
        gateway.url, {"model": "chat", "stream": True, "messages": PROMPT}, auth()
    )

    assert mock.last_request()["body"]["stream_options"] == {"include_usage": True}
    assert events[-1][1] == b"data: [DONE]"
    chunks = payloads(events)
    assert all("usage" not in chunk for chunk in chunks), "the client did not ask for usage"
    assert all(chunk["choices"] for chunk in chunks)
    # Settled with the provider's own figures: 13 words, and its prompt count.
    prompt = mock.last_request()["body"]["messages"]
    expected = len(orjson.dumps(prompt)) // 4 + 13
    settles_to(config, "app", "tokens", before + expected, processor=gateway.processor)


def test_a_client_that_asks_for_usage_gets_it(gateway: RunningGateway) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as client:
        chunks = list(
            client.chat.completions.create(
                model="chat",
                messages=PROMPT,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 13
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]).startswith("Hello")


def test_the_sdk_iterates_plain_streams(gateway: RunningGateway) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as client:
        text = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(
                model="chat",
                messages=PROMPT,  # type: ignore[arg-type]
                stream=True,
            )
        )
        completion = "".join(
            chunk.choices[0].text
            for chunk in client.completions.create(model="chat", prompt="Hi", stream=True)
        )
    assert text.startswith("Hello from the mock provider")
    assert completion.startswith("Hello from")


def test_anthropic_streams_are_relayed_and_settled(
    gateway: RunningGateway, config: Path, mock: MockProvider
) -> None:
    before = used(config, gateway, "app", "tokens", "1d")
    body = {"model": "claude", "stream": True, "max_tokens": 100, "messages": PROMPT}
    events = stream_events(gateway.url, body, auth(), path="/v1/messages")
    kinds = [block.split(b"\n")[0] for _, block in events]
    assert kinds[0] == b"event: message_start" and kinds[-1] == b"event: message_stop"
    assert "stream_options" not in mock.last_request()["body"]
    input_tokens = len(orjson.dumps(PROMPT)) // 4
    settles_to(config, "app", "tokens", before + input_tokens + 13, processor=gateway.processor)


def test_a_stream_the_provider_cuts_is_charged_what_was_streamed(
    gateway: RunningGateway, config: Path
) -> None:
    before = used(config, gateway, "app", "tokens", "1d")
    body = {"model": "chat", "stream": True, "messages": PROMPT}
    with pytest.raises(httpx.RemoteProtocolError):
        cut = {"x-mock-cut-after": "5", "x-mock-chunk-delay-ms": "50"}
        stream_events(gateway.url, body, auth(**cut))
    wait_until(
        lambda: used(config, gateway, "app", "concurrent", None) == 0,
        "the cut stream was never settled",
    )
    prompt = estimate_tokens([PROMPT])
    # The role chunk and 4 words streamed, about 4 bytes a token.
    streamed = len("Hello from the mock ") // 4
    settles_to(config, "app", "tokens", before + prompt + streamed, processor=gateway.processor)


def test_a_stream_that_outruns_its_budget_ends_with_an_error_event(
    gateway: RunningGateway, config: Path, mock: MockProvider
) -> None:
    # "short" reserves 5 output tokens; the provider would write 200.
    body = {"model": "short", "stream": True, "messages": PROMPT}
    pacing = {"x-mock-words": "200", "x-mock-chunk-delay-ms": "10"}
    events = stream_events(gateway.url, body, auth(BUDGET_KEY, **pacing))

    assert events[-1][1] == b"data: [DONE]"
    error = orjson.loads(events[-2][1].removeprefix(b"data: "))["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "during the stream" in error["message"]
    text = "".join(chunk["choices"][0]["delta"]["content"] for chunk in payloads(events[:-2]))
    streamed = math.ceil(len(text) / 4)  # the gateway's estimate: about 4 bytes a token
    prompt = estimate_tokens([PROMPT])
    # Past the 5 tokens first reserved, as far as the budget paid for, and no further.
    assert 5 < streamed <= BUDGET - prompt < streamed + 3
    # The provider was stopped: it never finished its 200 words.
    stream = wait_until(
        lambda: (last := mock.last_request()["stream"])["ended"] and last,
        "the provider is still writing",
    )
    assert not stream["completed"] and stream["sent"] < 200
    settles_to(config, "budget", "tokens", BUDGET, processor=gateway.processor)


def test_the_sdk_raises_a_clean_error_when_the_budget_stops_a_stream(
    gateway: RunningGateway,
) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=BUDGET_KEY, max_retries=0)
    with client, pytest.raises(openai.APIError) as stopped:
        for _ in client.chat.completions.create(
            model="short",
            messages=PROMPT,  # type: ignore[arg-type]
            stream=True,
            extra_headers={"x-mock-words": "200"},
        ):
            pass
    assert "Limit reached" in str(stopped.value)


@pytest.mark.parametrize("stream", [False, True])
def test_provider_errors_reach_clients_in_openai_shape(
    gateway: RunningGateway, stream: bool
) -> None:
    body = {"model": "chat", "stream": stream, "messages": PROMPT}
    url = gateway.url + "/v1/chat/completions"
    plain = auth(**{"x-mock-status": "503", "x-mock-body": "upstream overloaded"})
    error = assert_openai_error(HTTP.post(url, json=body, headers=plain), 503)
    assert error["type"] == "server_error"
    assert "upstream overloaded" in str(error["message"])

    partial = auth(**{"x-mock-status": "400", "x-mock-body": '{"error": {"message": "bad"}}'})
    error = assert_openai_error(HTTP.post(url, json=body, headers=partial), 400)
    assert error == {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}

    refused = HTTP.post(url, json=body, headers=auth(**{"x-mock-status": "401"}))
    assert assert_openai_error(refused, 502)["code"] == "provider_auth_failed"
