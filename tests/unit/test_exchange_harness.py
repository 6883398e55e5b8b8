"""The request's own stream (Exchange), each attempt's (Attempt) and the response side, driven
in process with the messages Envoy sends, without Envoy: the hand-off between the streams of a
call to an alias with fallback (the first attempt prepared by the request's own stream, the
next by its own), and what the ledger is charged."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import orjson

from extproc import headers as names
from extproc.attempt import Attempt
from extproc.config import Gateway, parse_gateway
from extproc.config.loader import compile_tracing
from extproc.config.schema import TracingSpec
from extproc.contract import CLUSTER_ATTRIBUTE, METHOD_ATTRIBUTE, PATH_ATTRIBUTE, TARGET_ATTRIBUTE
from extproc.envoyapi.messages import Answer, Headers, Message, ProcessingResponse, WrittenAnswer
from extproc.exchange import Exchange, Services
from extproc.first_attempt import AttemptReport, report_key
from extproc.quota.configured import open_ledger, open_store
from extproc.telemetry.requests import Telemetry
from extproc.telemetry.spans import Spans
from extproc.usage_report import usage_rows
from tests.conftest import GATEWAY_KEY
from tests.harness import sha256

CONFIG = f"""
providers:
  claude: {{kind: anthropic, base_url: "http://127.0.0.1:1", api_key: "${{env:CLAUDE}}"}}
  openai: {{kind: openai, base_url: "http://127.0.0.1:2", api_key: "${{env:OPENAI}}"}}
models:
  smart:
    targets:
      - {{provider: claude, model: claude-sonnet-4-5, priority: 0}}
      - {{provider: openai, model: gpt-4o, priority: 1}}
keys:
  - id: app
    sha256: "{sha256(GATEWAY_KEY)}"
    models: ["*"]
    limits: [{{tokens: 100000, per: 1h}}]
"""
CLIENT_HEADERS: Headers = {
    ":method": ["POST"],
    ":path": ["/v1/chat/completions"],
    ":authority": ["gateway"],
    "authorization": [f"Bearer {GATEWAY_KEY}"],
    "content-type": ["application/json"],
    "cookie": ["session=secret"],
    "x-request-id": ["r-1"],
}
CHAT = {"model": "smart", "messages": [{"role": "user", "content": "Hello there"}]}
CLAUDE_ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hi from Claude"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 11, "output_tokens": 7},
}
OPENAI_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi from GPT"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 13, "completion_tokens": 5, "total_tokens": 18},
}


def parsed(answer: Answer | None) -> ProcessingResponse:
    assert answer is not None and not isinstance(answer, list)
    if isinstance(answer, WrittenAnswer):
        return ProcessingResponse.FromString(b"".join(bytes(piece) for piece in answer.pieces))
    return answer


def message(
    phase: str, *, headers: Headers | None = None, body: bytes = b"", **rest: Any
) -> Message:
    return Message(
        phase,
        headers or {},
        body,
        rest.get("end_of_stream", phase.endswith("body")),
        attributes=rest.get("attributes", {}),
        shared=rest.get("shared", {}),
    )


def mutated(headers: Headers, answer: ProcessingResponse, phase: str) -> Headers:
    """`headers` as Envoy holds them after the answer's header mutation."""
    common = getattr(answer, phase).response
    changed = {name: list(values) for name, values in headers.items()}
    for name in common.header_mutation.remove_headers:
        changed.pop(name, None)
    for option in common.header_mutation.set_headers:
        changed[option.header.key] = [option.header.raw_value.decode()]
    return changed


class Call:
    """One client call through the gateway, Envoy's part played here."""

    def __init__(self, gateway: Gateway, services: Services) -> None:
        self.gateway, self.services = gateway, services
        self.exchange = Exchange(gateway, services)
        self.attempts = 0

    async def send(self) -> tuple[Headers, bytes, ProcessingResponse]:
        """The request's stream until the request goes upstream: its headers, body, and the
        answer with the shared metadata."""
        answer = parsed(
            await self.exchange.process(message("request_headers", headers=CLIENT_HEADERS))
        )
        assert answer.HasField("request_headers") and not answer.HasField("immediate_response")
        body = parsed(await self.exchange.process(message("request_body", body=orjson.dumps(CHAT))))
        routed = mutated(CLIENT_HEADERS, body, "request_body")
        return routed, body.request_body.response.body_mutation.body, body

    async def attempt(
        self, request: tuple[Headers, bytes, ProcessingResponse], target: int, answer: Headers
    ) -> tuple[Headers, bytes, Headers]:
        """One attempt at `target`: what goes to its provider, and its answer's headers as
        the request's stream then sees them."""
        headers, body, sent = request
        self.attempts += 1
        own = {**headers, names.ATTEMPT_COUNT: [str(self.attempts)]}
        counted = {**answer, names.ATTEMPT_COUNT: [str(self.attempts)]}
        if self.attempts == 1 and headers.get(names.PREPARED_FOR) == [str(target)]:
            # Envoy's matcher skips the attempt's filter, its remover takes the internal
            # headers off; its router reports the attempt when it failed.
            upstream = {
                name: values
                for name, values in own.items()
                if name not in (names.ATTEMPT_COUNT, names.PREPARED_FOR)
            }
            status = int(answer[names.STATUS][0])
            if status >= 400:
                report = AttemptReport(status, {k: v for k, v in answer.items() if k[0] != ":"})
                self.services.first_attempts.report(report_key("r-1", str(target)), report)
            return upstream, body, counted
        attempt = Attempt(self.gateway, self.services.ledger.store, self.services.telemetry)
        cluster = headers[names.ROUTE][0].removeprefix("alias=")
        attributes = {
            TARGET_ATTRIBUTE: str(target),
            CLUSTER_ATTRIBUTE: f"alias_{cluster}",
            PATH_ATTRIBUTE: CLIENT_HEADERS[":path"][0],
            METHOD_ATTRIBUTE: "POST",
        }
        shared = {key: value.string_value for key, value in sent.dynamic_metadata.fields.items()}
        first = parsed(
            await attempt.process(
                message("request_headers", headers=own, attributes=attributes, shared=shared)
            )
        )
        assert not first.HasField("immediate_response")
        prepared = parsed(await attempt.process(message("request_body", body=body)))
        upstream = mutated(own, prepared, "request_body")
        upstream_body = prepared.request_body.response.body_mutation.body
        answered = parsed(await attempt.process(message("response_headers", headers=answer)))
        await attempt.finish()
        return upstream, upstream_body, mutated(counted, answered, "response_headers")

    async def answer(self, headers: Headers, body: bytes) -> tuple[Headers, dict[str, Any]]:
        """The provider's answer through the request's stream: what the client gets."""
        head = parsed(await self.exchange.process(message("response_headers", headers=headers)))
        client_headers = mutated(headers, head, "response_headers")
        whole = parsed(await self.exchange.process(message("response_body", body=body)))
        mutation = whole.response_body.response.body_mutation
        await self.exchange.finish()
        return client_headers, orjson.loads(mutation.body if mutation.body else body)


async def charged_tokens(gateway: Gateway, services: Services) -> int:
    (row,) = await usage_rows(gateway, services.ledger.store.read, time.time())
    return row.used


def setup(tmp_path: Path) -> tuple[Gateway, Services]:
    environ = {"CLAUDE": "sk-ant-claude", "OPENAI": "sk-openai"}
    gateway = parse_gateway(CONFIG, source=tmp_path / "gateway.yaml", environ=environ)
    store = open_store("memory", password=None, timeout=1.0)
    ledger = open_ledger(store, longest_request=60, timeout=1.0)
    telemetry = Telemetry(Spans(None, compile_tracing(TracingSpec())), None, None)
    return gateway, Services(ledger, telemetry, random.Random(1))


JSON = {"content-type": ["application/json"]}


async def test_the_first_target_answers_in_its_schema_and_the_client_gets_its_own(
    tmp_path: Path,
) -> None:
    gateway, services = setup(tmp_path)
    call = Call(gateway, services)
    request = await call.send()
    routed, _, _ = request
    assert routed[names.ROUTE] == ["alias=smart.0"]
    assert routed[names.PREPARED_FOR] == ["0"], "prepared by the request's own stream"
    assert "authorization" not in routed and "cookie" not in routed

    upstream, body, seen = await call.attempt(request, 0, {":status": ["200"], **JSON})
    assert upstream[":path"] == ["/v1/messages"]
    assert upstream["x-api-key"] == ["sk-ant-claude"]
    assert names.ATTEMPT_COUNT not in upstream and "cookie" not in upstream
    assert names.PREPARED_FOR not in upstream
    assert orjson.loads(body)["model"] == "claude-sonnet-4-5"
    assert names.TARGET not in seen, "no attempt stream saw it"

    answer_headers, answer = await call.answer(seen, orjson.dumps(CLAUDE_ANSWER))
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "Hi from Claude"
    assert names.TARGET not in answer_headers
    assert await charged_tokens(gateway, services) == 11 + 7


async def test_a_throttled_target_hands_the_call_to_the_next_and_cools_down(
    tmp_path: Path,
) -> None:
    gateway, services = setup(tmp_path)
    call = Call(gateway, services)
    request = await call.send()
    throttled = {":status": ["429"], "retry-after": ["30"], **JSON}
    _, _, seen = await call.attempt(request, 0, throttled)
    assert seen[":status"] == ["429"]

    upstream, body, seen = await call.attempt(request, 1, {":status": ["200"], **JSON})
    assert upstream[":path"] == ["/v1/chat/completions"]
    assert upstream["authorization"] == ["Bearer sk-openai"]
    assert "x-api-key" not in upstream, "the first attempt's key stays behind"
    assert orjson.loads(body)["model"] == "gpt-4o"

    _, answer = await call.answer(seen, orjson.dumps(OPENAI_ANSWER))
    assert answer["choices"][0]["message"]["content"] == "Hi from GPT"
    assert await charged_tokens(gateway, services) == 13 + 5, "the answering target's usage"

    # The next call starts past the level cooling down.
    routed, _, _ = await Call(gateway, services).send()
    assert routed[names.ROUTE] == ["alias=smart.1"]
