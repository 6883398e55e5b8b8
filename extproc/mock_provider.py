"""A fake LLM provider (OpenAI- and Anthropic-compatible) for demos, tests and benchmarks.

It answers chat, completions, embeddings and Anthropic messages, JSON or SSE, with realistic
`usage`. Test scenarios are chosen per request by headers:

  x-mock-status: 429          answer this status with an OpenAI-style error (or x-mock-body)
  x-mock-body: {...}          answer exactly this body
  x-mock-latency-ms: 250      wait before answering
  x-mock-chunk-delay-ms: 20   wait between streamed events
  x-mock-words: 500           answer this many words (the reply text repeats)
  x-mock-cut-after: 3         cut the connection after this many streamed events

`GET /_mock/requests` lists what it received (credential values as SHA-256 digests, never the
values) and, for streams, how many events it sent and whether the client stayed to the end;
`DELETE /_mock/requests` forgets them.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from extproc.headers import CREDENTIAL_HEADERS

REPLY = "Hello from the mock provider. This answer stands in for a real model."
EMBEDDING_DIMENSIONS = 8
RECORDED = 1000
CHARS_PER_TOKEN = 4

_requests = web.AppKey("requests", deque[dict[str, Any]])


def estimate_tokens(value: Any) -> int:
    """A stable, rough token count: about four characters a token."""
    return max(1, len(orjson.dumps(value)) // CHARS_PER_TOKEN)


def _record(request: web.Request, body: Any) -> dict[str, Any]:
    headers = {
        name.lower(): (
            "sha256:" + hashlib.sha256(value.encode()).hexdigest()
            if name.lower() in CREDENTIAL_HEADERS
            else value
        )
        for name, value in request.headers.items()
    }
    return {
        "method": request.method,
        "path": request.path,
        "query": request.query_string,
        "headers": headers,
        "body": body,
    }


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _handle(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = None
    record = _record(request, body)
    request.app[_requests].append(record)
    if latency := request.headers.get("x-mock-latency-ms"):
        await asyncio.sleep(int(latency) / 1000)
    if "x-mock-status" in request.headers or "x-mock-body" in request.headers:
        return _scripted(request, int(request.headers.get("x-mock-status", "200")))
    if not isinstance(body, dict):
        return _json(_error("The body is not a JSON object.", "invalid_request_error"), 400)
    return await _answer(request, body, record)


async def _answer(
    request: web.Request, body: dict[str, Any], record: dict[str, Any]
) -> web.StreamResponse:
    path = request.path
    words = _reply_words(body, request.headers.get("x-mock-words"))
    if path.endswith("/embeddings"):
        return _json(_embeddings(body))
    if path.endswith("/messages"):
        if body.get("stream"):
            return await _send_events(request, _anthropic_events(body, words), record)
        return _json(_anthropic_message(body, words))
    text_completion = path.endswith("/completions") and not path.endswith("/chat/completions")
    if body.get("stream"):
        events = _openai_events(body, words, text_completion=text_completion)
        return await _send_events(request, events, record)
    return _json(_completion(body, words, text_completion=text_completion))


def _scripted(request: web.Request, status: int) -> web.Response:
    if "x-mock-body" in request.headers:
        text = request.headers["x-mock-body"]
        return web.Response(text=text, status=status, content_type="application/json")
    return _json(_error(f"Mock provider answered {status}.", "mock_error"), status)


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _usage(body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    prompt_tokens = estimate_tokens(body.get("messages") or body.get("prompt") or "")
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _reply_words(body: dict[str, Any], count: str | None) -> list[str]:
    """One token a word; `count` (a header) asks for that many, else the reply once."""
    words = [word + " " for word in REPLY.split(" ")]
    if count is not None and count.isdigit():
        words = [words[index % len(words)] for index in range(int(count))]
    cap = body.get("max_tokens") or body.get("max_completion_tokens")
    return words[:cap] if isinstance(cap, int) and cap > 0 else words


def _completion(body: dict[str, Any], words: list[str], *, text_completion: bool) -> dict[str, Any]:
    text = "".join(words).rstrip()
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": None}
    if text_completion:
        choice["text"] = text
    else:
        choice["message"] = {"role": "assistant", "content": text, "refusal": None}
    return {
        "id": f"mock-{time.monotonic_ns()}",
        "object": "text_completion" if text_completion else "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "mock"),
        "choices": [choice],
        "usage": _usage(body, len(words)),
    }


def _openai_events(body: dict[str, Any], words: list[str], *, text_completion: bool) -> list[bytes]:
    """OpenAI's stream: a chunk a word; with include_usage every chunk carries `usage: null`
    and a last chunk with no choices carries the usage."""
    options = body.get("stream_options")
    with_usage = isinstance(options, dict) and options.get("include_usage") is True
    base: dict[str, Any] = {
        "id": f"mock-{time.monotonic_ns()}",
        "object": "text_completion" if text_completion else "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "mock"),
    }
    events = []
    for index, word in enumerate(words):
        last = index == len(words) - 1
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop" if last else None}
        if text_completion:
            choice["text"] = word
        else:
            choice["delta"] = {"content": word} | ({"role": "assistant"} if index == 0 else {})
        chunk = base | {"choices": [choice]} | ({"usage": None} if with_usage else {})
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    if with_usage:
        usage = base | {"choices": [], "usage": _usage(body, len(words))}
        events.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _anthropic_events(body: dict[str, Any], words: list[str]) -> list[bytes]:
    """Anthropic's stream: input tokens at the start, output tokens at the end."""
    message = _anthropic_message(body, []) | {"content": [], "stop_reason": None}
    payloads: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
            for w in words
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": len(words)},
        },
        {"type": "message_stop"},
    ]
    return [
        b"event: " + p["type"].encode() + b"\ndata: " + orjson.dumps(p) + b"\n\n" for p in payloads
    ]


async def _send_events(
    request: web.Request, events: list[bytes], record: dict[str, Any]
) -> web.StreamResponse:
    delay = int(request.headers.get("x-mock-chunk-delay-ms", "0")) / 1000
    cut_after = request.headers.get("x-mock-cut-after")
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    record["stream"] = {"sent": 0, "completed": False, "ended": False}
    try:
        for index, event in enumerate(events):
            if cut_after is not None and index == int(cut_after):
                assert request.transport is not None
                request.transport.abort()  # the provider fails mid-stream
                return response
            try:
                await response.write(event)
            except (ConnectionError, RuntimeError):
                return response  # the gateway hung up: stop generating
            record["stream"]["sent"] = index + 1
            if delay:
                await asyncio.sleep(delay)
        await response.write_eof()
        record["stream"]["completed"] = True
    finally:
        record["stream"]["ended"] = True
    return response


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
    data = []
    for index, item in enumerate(items):
        seed = hashlib.sha256(orjson.dumps(item)).digest()
        vector = [seed[i % len(seed)] / 255 for i in range(dimensions)]
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = estimate_tokens(inputs)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model", "mock"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _anthropic_message(body: dict[str, Any], words: list[str]) -> dict[str, Any]:
    return {
        "id": f"msg_mock{time.monotonic_ns()}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "mock"),
        "content": [{"type": "text", "text": "".join(words).rstrip()}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": estimate_tokens(body.get("messages")),
            "output_tokens": len(words),
        },
    }


async def _list_requests(request: web.Request) -> web.Response:
    recorded = request.app[_requests]
    return _json(list(recorded))


async def _forget_requests(request: web.Request) -> web.Response:
    request.app[_requests].clear()
    return _json({"cleared": True})


def build_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    recorded: deque[dict[str, Any]] = deque(maxlen=RECORDED)
    app[_requests] = recorded
    app.router.add_get("/_mock/requests", _list_requests)
    app.router.add_delete("/_mock/requests", _forget_requests)
    app.router.add_post("/{tail:.*}", _handle)
    return app


async def serve(host: str, port: int) -> None:
    """Serve until cancelled; prints the address it listens on (port 0 picks a free one)."""
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"mock provider listening on http://{host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
