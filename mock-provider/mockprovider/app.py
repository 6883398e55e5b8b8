"""The mock's HTTP side: which provider a path belongs to, its credential check, recording,
scripted failures, and compression.

Routes: `…/v1/chat/completions`, `…/v1/completions`, `…/v1/embeddings` (OpenAI, Bearer key);
`…/v1/responses` (with `…/input_tokens`, and `GET`/`DELETE …/v1/responses/{id}` for stored
responses); `…/openai/deployments/{deployment}/…?api-version=` and `…/openai/v1/responses`
(Azure OpenAI, `api-key`);
`…/v1/messages` and `…/v1/messages/count_tokens` (Anthropic, `x-api-key` +
`anthropic-version`);
`…/{version}/models/{model}:generateContent|streamGenerateContent|batchEmbedContents`
(Gemini, `x-goog-api-key` or `?key=`).

Headers that script a request (beside those of `script`):

  x-mock-status: 429           answer this status with the provider's error shape
  x-mock-body: {...}           answer exactly this body (with x-mock-status, or 200)
  x-mock-latency-ms: 250       wait before answering
  x-mock-chunk-delay-ms: 20    wait between streamed events
  x-mock-cut-after: 3          cut the connection after this many streamed events
  x-mock-stall-after: 3        send this many streamed events, then nothing more (the
                               connection stays open until the client leaves)
  x-mock-force-gzip: 1         compress the answer even when the client did not accept gzip
  x-mock-corrupt-frame: 2      (Bedrock streams) flip a bit in this event-stream frame
  x-mock-response-headers: {"x-extra": "1"}
                               add these headers to the answer
  x-mock-fail: gpt-4o=429/2, claude-sonnet-4-5=reset
                               fail the requests for these models only (the model of the body,
                               the Azure deployment or the Gemini model of the path): a status
                               in the provider's error shape, with `Retry-After` seconds after
                               a slash; `reset` closes the connection unanswered; `stall`
                               never answers

Answers carry the headers each real API adds — OpenAI's organization, project, limits and
`x-request-id`, Anthropic's organization id and `request-id`, Azure's region, AWS's
`x-amzn-requestid`, Cloudflare's cookie and ray — so that a test sees what reaches a client.
Answers are gzip-compressed whenever the request accepts gzip, as hosted APIs do (streams
too, flushed event by event). AWS STS `AssumeRoleWithWebIdentity` (a form POST to any path)
gives the test credentials. `GET /_mock/requests` lists what the mock received (credential
values as SHA-256 digests, never the values) and, for streams, how many events it sent and
whether the client stayed to the end; `DELETE /_mock/requests` forgets them.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import re
import secrets
import uuid
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from mockprovider import anthropic, bedrock, gemini, openai, responses, sts, vertex
from mockprovider.script import MockError, plan_reply

RECORDED = 1000
CREDENTIALS = ("authorization", "api-key", "x-api-key", "x-goog-api-key", "x-amz-security-token")
_GEMINI = re.compile(r"/(?P<version>v1(?:beta|alpha)?)/models/(?P<model>[^/:]+):(?P<method>\w+)$")

_BEDROCK = re.compile(r"/model/(?P<model>[^/]+)/(?P<method>converse|converse-stream|invoke)$")
_ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")

_requests = web.AppKey("requests", deque[dict[str, Any]])
_stored = web.AppKey("stored", dict[str, dict[str, Any]])
_tokens = web.AppKey("tokens", set[str])
_keys = web.AppKey("keys", frozenset[str])
ErrorBody = Callable[[int, str], bytes]


def _record(request: web.Request, body: Any) -> dict[str, Any]:
    def digest(value: str) -> str:
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()

    headers = {
        name.lower(): digest(value) if name.lower() in CREDENTIALS else value
        for name, value in request.headers.items()
    }
    query = "&".join(
        f"{name}={digest(value) if name == 'key' else value}"
        for name, value in request.query.items()
    )
    return {
        "method": request.method,
        "path": request.path,
        "query": query,
        "headers": headers,
        "body": body,
    }


async def _post(request: web.Request) -> web.StreamResponse:
    if request.content_type == "application/x-www-form-urlencoded":
        # The APIs the mock serves form-encoded: Google's token endpoint and AWS STS.
        form = {name: str(value) for name, value in (await request.post()).items()}
        if "grant_type" in form:
            return _oauth_token(request, form)
        return await _sts(request, form)
    return await _handle(request)


def _oauth_token(request: web.Request, form: dict[str, str]) -> web.Response:
    digest = "sha256:" + hashlib.sha256(form.get("assertion", "").encode()).hexdigest()
    request.app[_requests].append(_record(request, form | {"assertion": digest}))
    status, answer = vertex.issue_token(form, request.app[_tokens])
    return web.Response(status=status, body=orjson.dumps(answer), content_type="application/json")


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
    if bedrock_path := _BEDROCK.search(request.path):
        return await _bedrock(request, raw, body, record, bedrock_path)
    if vertex_path := vertex.PATH.search(request.path):
        return await _vertex(request, body, record, vertex_path)
    return await _keyed(request, body, record)


async def _keyed(request: web.Request, body: Any, record: dict[str, Any]) -> web.StreamResponse:
    """The APIs that take a key: OpenAI, Azure OpenAI, Anthropic, Gemini."""
    gemini_path = _GEMINI.search(request.path)
    failure = _failure_for(request, body, gemini_path)
    if failure is not None:
        return await _fail(request, failure, gemini_path)
    if gemini_path:
        return await _serve(request, body, record, gemini.error, _gemini(gemini_path))
    if request.path.endswith(_ANTHROPIC_PATHS):
        return await _serve(request, body, record, anthropic.error, _anthropic)
    if _azure(request.path):
        return await _serve(request, body, record, openai.azure_error, _openai(azure=True))
    return await _serve(request, body, record, openai.status_error, _openai(azure=False))


async def _sts(request: web.Request, form: dict[str, str]) -> web.Response:
    """AWS STS, recorded with the web identity token as a digest (it is a credential)."""
    token = form.get("WebIdentityToken", "").encode()
    digest = "sha256:" + hashlib.sha256(token).hexdigest()
    record = _record(request, form | {"WebIdentityToken": digest})
    request.app[_requests].append(record)
    if form.get("Action") != "AssumeRoleWithWebIdentity":
        return web.Response(status=400, text="Only AssumeRoleWithWebIdentity is mocked.")
    status, body = sts.assume_role_with_web_identity(form)
    return web.Response(status=status, text=body, content_type="text/xml")


def _azure(path: str) -> bool:
    """Azure OpenAI's paths: per deployment, or its v1 API (`/openai/v1/…`)."""
    return "/openai/deployments/" in path or "/openai/v1/" in path


def _failure_for(request: web.Request, body: Any, gemini_path: re.Match[str] | None) -> str | None:
    """The scripted failure (`x-mock-fail`) for the model this request is for, if any."""
    script = request.headers.get("x-mock-fail")
    if not script:
        return None
    if gemini_path is not None:
        model = gemini_path["model"]
    elif "/openai/deployments/" in request.path:
        model = request.path.split("/openai/deployments/", 1)[1].split("/", 1)[0]
    else:
        model = body.get("model") if isinstance(body, dict) else None
    failures = dict(item.strip().split("=", 1) for item in script.split(",") if "=" in item)
    return failures.get(str(model))


async def _fail(
    request: web.Request, failure: str, gemini_path: re.Match[str] | None
) -> web.StreamResponse:
    if failure == "stall":
        await asyncio.Event().wait()
    if failure == "reset":
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise web.HTTPBadRequest  # never sent: the connection is gone
    status, _, retry_after = failure.partition("/")
    code = int(status)
    error_body: ErrorBody
    if gemini_path is not None:
        error_body = gemini.error
    elif request.path.endswith(_ANTHROPIC_PATHS):
        error_body = anthropic.error
    elif _azure(request.path):
        error_body = openai.azure_error
    else:
        error_body = openai.status_error
    response = _json(request, error_body(code, f"Mock provider answered {code}."), code)
    if retry_after:
        response.headers["retry-after"] = retry_after
    return response


Answer = Callable[[web.Request, dict[str, Any], dict[str, Any]], Awaitable[web.StreamResponse]]


async def _serve(
    request: web.Request,
    body: Any,
    record: dict[str, Any],
    error_body: ErrorBody,
    answer: Answer,
) -> web.StreamResponse:
    if "x-mock-status" in request.headers or "x-mock-body" in request.headers:
        status = int(request.headers.get("x-mock-status", "200"))
        text = request.headers.get("x-mock-body")
        scripted = (
            text.encode()
            if text is not None
            else error_body(status, f"Mock provider answered {status}.")
        )
        return _json(request, scripted, status)
    if not isinstance(body, dict):
        return _json(request, error_body(400, "The body is not a JSON object."), 400)
    try:
        return await answer(request, body, record)
    except MockError as error:
        return _json(request, error_body(error.status, str(error)), error.status)


def _openai(azure: bool) -> Answer:
    async def answer(
        request: web.Request, body: dict[str, Any], record: dict[str, Any]
    ) -> web.StreamResponse:
        error = openai.azure_error if azure else openai.status_error
        refused = openai.check_key(request.headers, request.app[_keys], azure=azure)
        if refused is not None:
            return _json(request, error(401, refused), 401)
        if "/openai/deployments/" in request.path and "api-version" not in request.query:
            return _json(request, error(404, "Resource not found"), 404)
        path = request.path
        if path.endswith(("/v1/responses", "/v1/responses/input_tokens")):
            return await _responses(request, body, record)
        if path.endswith("/embeddings"):
            return _json(request, orjson.dumps(openai.embeddings(body)))
        chat = path.endswith("/chat/completions")
        if not chat and not path.endswith("/completions"):
            raise MockError(f"Unknown request URL: POST {path}.", status=404)
        check = openai.check_chat if chat else openai.check_completion
        reply = plan_reply(check(body), request.headers, "call_")
        if body.get("stream"):
            stream = openai.chat_events if chat else openai.completion_events
            return await _send_events(request, stream(body, reply), record)
        answer = openai.chat_answer if chat else openai.completion_answer
        return _json(request, orjson.dumps(answer(body, reply)))

    return answer


async def _responses(
    request: web.Request, body: dict[str, Any], record: dict[str, Any]
) -> web.StreamResponse:
    stored = request.app[_stored]
    if request.path.endswith("/input_tokens"):
        return _json(request, orjson.dumps(responses.count(body, stored)))
    reply = plan_reply(responses.check(body, stored), request.headers, "call_")
    if body.get("stream"):
        return await _send_events(request, responses.events(body, reply, stored), record)
    return _json(request, orjson.dumps(responses.answer(body, reply, stored)))


async def _stored_response(request: web.Request) -> web.StreamResponse:
    """`GET` and `DELETE /v1/responses/{id}` (OpenAI, and Azure's v1 API)."""
    azure = _azure(request.path)
    error = openai.azure_error if azure else openai.status_error
    request.app[_requests].append(_record(request, None))
    refused = openai.check_key(request.headers, request.app[_keys], azure=azure)
    if refused is not None:
        return _json(request, error(401, refused), 401)
    stored = request.app[_stored]
    response_id = request.match_info["id"]
    if response_id not in stored:
        message = f"Response with id '{response_id}' not found."
        return _json(request, error(404, message), 404)
    if request.method == "DELETE":
        del stored[response_id]
        deleted = {"id": response_id, "object": "response.deleted", "deleted": True}
        return _json(request, orjson.dumps(deleted))
    if request.path.endswith("/input_items"):
        return _json(request, orjson.dumps(responses.input_items(stored[response_id])))
    return _json(request, orjson.dumps(responses.public(stored[response_id])))


async def _bedrock(
    request: web.Request,
    raw: bytes,
    body: Any,
    record: dict[str, Any],
    path: re.Match[str],
) -> web.StreamResponse:
    """Converse, ConverseStream and InvokeModel (embeddings), for requests whose SigV4
    signature checks out."""
    url = f"{request.scheme}://{request.host}{request.raw_path}"
    refused = bedrock.check_signature(request.method, url, request.headers, raw)
    if refused is not None:
        return _bedrock_error(request, *refused)
    failure = _failure_for(request, {"model": unquote(path["model"])}, None)
    if failure is not None:
        return await _bedrock_failure(request, failure)
    try:
        if not isinstance(body, dict):
            raise MockError("Malformed JSON.")
        return await _bedrock_answer(request, body, record, path)
    except MockError as error:
        return _bedrock_error(request, error.status, bedrock.error_name(error.status), str(error))


async def _bedrock_answer(
    request: web.Request, body: dict[str, Any], record: dict[str, Any], path: re.Match[str]
) -> web.StreamResponse:
    if path["method"] == "invoke":
        return _json(request, orjson.dumps(bedrock.embed(unquote(path["model"]), body)))
    reply = plan_reply(bedrock.check(body, unquote(path["model"])), request.headers, "tooluse_")
    if path["method"] == "converse-stream":
        frames = bedrock.events(reply)
        if (corrupt := request.headers.get("x-mock-corrupt-frame", "")).isdigit():
            frames[int(corrupt)] = bedrock.corrupted(frames[int(corrupt)])
        return await _send_events(request, frames, record, bedrock.EVENT_STREAM_TYPE)
    return _json(request, orjson.dumps(bedrock.answer(reply)))


async def _bedrock_failure(request: web.Request, failure: str) -> web.StreamResponse:
    """A scripted failure (`x-mock-fail`) in Bedrock's error shape."""
    if not failure[0].isdigit():
        return await _fail(request, failure, None)  # reset, stall
    status, _, retry_after = failure.partition("/")
    code = int(status)
    response = _bedrock_error(request, code, bedrock.error_name(code), f"Mock answered {code}.")
    if retry_after:
        response.headers["retry-after"] = retry_after
    return response


def _bedrock_error(request: web.Request, status: int, name: str, message: str) -> web.Response:
    response = _json(request, bedrock.error(status, message), status)
    response.headers["x-amzn-errortype"] = (
        f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    )
    return response


async def _anthropic(
    request: web.Request, body: dict[str, Any], record: dict[str, Any]
) -> web.StreamResponse:
    refused = anthropic.check_headers(request.headers, request.app[_keys])
    if refused is not None:
        status, message = refused
        return _json(request, anthropic.error(status, message), status)
    if request.path.endswith("/count_tokens"):
        return _json(request, orjson.dumps(anthropic.count_tokens(body)))
    reply = plan_reply(anthropic.check_message(body), request.headers, "toolu_")
    if body.get("stream"):
        return await _send_events(request, anthropic.events(body, reply), record)
    return _json(request, orjson.dumps(anthropic.message(body, reply)))


async def _vertex(
    request: web.Request, body: Any, record: dict[str, Any], path: re.Match[str]
) -> web.StreamResponse:
    """Vertex AI: a bearer token the mock issued, then Gemini's or Claude's API."""
    refused = vertex.check_token(request.headers, request.app[_tokens])
    if refused is not None:
        return _json(request, refused, 401)
    if path["publisher"] == "google":
        return await _serve(request, body, record, gemini.error, _gemini(path))
    return await _serve(request, body, record, anthropic.error, _claude_on_vertex(path))


def _claude_on_vertex(path: re.Match[str]) -> Answer:
    async def answer(
        request: web.Request, body: dict[str, Any], record: dict[str, Any]
    ) -> web.StreamResponse:
        if path["method"] not in ("rawPredict", "streamRawPredict"):
            raise MockError(f"Method {path['method']} is not supported by the mock.", status=404)
        claude = vertex.claude_body(body) | {"model": path["model"]}
        reply = plan_reply(anthropic.check_message(claude), request.headers, "toolu_")
        if path["method"] == "streamRawPredict":
            return await _send_events(request, anthropic.events(claude, reply), record)
        return _json(request, orjson.dumps(anthropic.message(claude, reply)))

    return answer


def _gemini(path: re.Match[str]) -> Answer:
    model, method = path["model"], path["method"]
    on_vertex = "publishers" in path.string  # authorized by its bearer token already

    async def answer(
        request: web.Request, body: dict[str, Any], record: dict[str, Any]
    ) -> web.StreamResponse:
        refused = gemini.check_key(
            request.headers, request.query.get("key", ""), request.app[_keys]
        )
        if refused is not None and not on_vertex:
            return _json(request, refused, orjson.loads(refused)["error"]["code"])
        if method == "batchEmbedContents":
            requests = gemini.check_embed(body, model)
            return _json(request, orjson.dumps(gemini.embeddings(requests)))
        if method not in ("generateContent", "streamGenerateContent"):
            raise MockError(f"Method {method} is not supported by the mock.", status=404)
        reply = plan_reply(gemini.check_generate(body, model), request.headers, "")
        if method == "generateContent":
            return _json(request, orjson.dumps(gemini.answer(model, reply)))
        if request.query.get("alt") != "sse":
            raise MockError("The mock streams server-sent events only: add ?alt=sse.")
        return await _send_events(request, gemini.events(model, reply), record)

    return answer


def _compress(request: web.Request) -> bool:
    accepted = request.headers.get("accept-encoding", "")
    return "gzip" in accepted.lower() or "x-mock-force-gzip" in request.headers


def _json(request: web.Request, body: bytes, status: int = 200) -> web.Response:
    headers = {"content-type": "application/json"}
    if _compress(request):
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    return web.Response(body=body, status=status, headers=headers)


async def _send_events(
    request: web.Request,
    events: list[bytes],
    record: dict[str, Any],
    content_type: str = "text/event-stream",
) -> web.StreamResponse:
    delay = int(request.headers.get("x-mock-chunk-delay-ms", "0")) / 1000
    cut_after = request.headers.get("x-mock-cut-after")
    stall_after = request.headers.get("x-mock-stall-after")
    headers = {"content-type": content_type, "cache-control": "no-cache"}
    compressor = None
    if _compress(request):
        compressor = zlib.compressobj(wbits=31)  # gzip, flushed after every event
        headers["content-encoding"] = "gzip"
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    record["stream"] = {"sent": 0, "completed": False, "ended": False}
    try:
        for index, event in enumerate(events):
            if cut_after is not None and index == int(cut_after):
                transport = request.transport
                assert transport is not None
                while transport.get_write_buffer_size() and not transport.is_closing():
                    await asyncio.sleep(0.001)  # what was sent has left, then the cut
                transport.abort()  # the provider fails mid-stream
                return response
            if stall_after is not None and index == int(stall_after):
                record["stream"]["stalled"] = True
                await _until_gone(request)
                return response
            data = event
            if compressor is not None:
                data = compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH)
            try:
                await response.write(data)
            except (ConnectionError, RuntimeError):
                return response  # the gateway hung up: stop generating
            record["stream"]["sent"] = index + 1
            if delay:
                await asyncio.sleep(delay)
        if compressor is not None:
            await response.write(compressor.flush())
        await response.write_eof()
        record["stream"]["completed"] = True
    finally:
        record["stream"]["ended"] = True
    return response


async def _until_gone(request: web.Request) -> None:
    """Hold a stalled answer open, sending nothing, until the client closes the connection."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(0.05)


async def _list_requests(request: web.Request) -> web.Response:
    recorded: deque[dict[str, Any]] = request.app[_requests]
    return web.Response(body=orjson.dumps(list(recorded)), content_type="application/json")


async def _forget_requests(request: web.Request) -> web.Response:
    request.app[_requests].clear()
    return web.Response(body=b'{"cleared":true}', content_type="application/json")


SCRIPT_HEADERS = (
    "x-mock-body",
    "x-mock-cache-write-tokens",
    "x-mock-cached-tokens",
    "x-mock-chunk-delay-ms",
    "x-mock-corrupt-frame",
    "x-mock-cut-after",
    "x-mock-fail",
    "x-mock-force-gzip",
    "x-mock-latency-ms",
    "x-mock-reasoning-tokens",
    "x-mock-response-headers",
    "x-mock-stall-after",
    "x-mock-status",
    "x-mock-text",
    "x-mock-tool-calls",
    "x-mock-word-bytes",
    "x-mock-words",
)
"""The request headers that script an answer (a gateway passes them on only when told to:
`forward_headers`)."""


async def _provider_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The headers the real API of this path adds to its answers."""
    path = request.path
    ray = {"cf-ray": secrets.token_hex(8) + "-IAD", "set-cookie": "__cf_bm=mock; path=/; Secure"}
    if _BEDROCK.search(path):
        added = {"x-amzn-requestid": str(uuid.uuid4())}
    elif vertex.PATH.search(path) or _GEMINI.search(path):
        added = {"server-timing": "gfet4t7; dur=12", "x-goog-served-by": "mock"}
    elif path.endswith(_ANTHROPIC_PATHS):
        added = ray | {
            "request-id": "req_" + secrets.token_hex(12),
            "anthropic-organization-id": "11111111-2222-3333-4444-555555555555",
            "anthropic-ratelimit-requests-limit": "4000",
        }
    elif _azure(path):
        added = {
            "apim-request-id": str(uuid.uuid4()),
            "x-request-id": str(uuid.uuid4()),
            "x-ms-region": "East US",
        }
    else:
        added = ray | {
            "x-request-id": "req_" + secrets.token_hex(12),
            "openai-organization": "org-mock-account",
            "openai-project": "proj_mock_account",
            "openai-processing-ms": "5",
            "x-ratelimit-limit-requests": "10000",
        }
    if scripted := request.headers.get("x-mock-response-headers"):
        added |= orjson.loads(scripted)
    for name, value in added.items():
        response.headers.setdefault(name, value)


def build_app(keys: frozenset[str] = frozenset()) -> web.Application:
    """`keys`: the provider keys the mock accepts (any, when empty)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_response_prepare.append(_provider_headers)
    app[_requests] = deque(maxlen=RECORDED)
    app[_keys] = keys
    app[_stored] = {}
    app[_tokens] = set()
    app.router.add_get("/_mock/requests", _list_requests)
    app.router.add_delete("/_mock/requests", _forget_requests)
    for method in ("GET", "DELETE"):
        app.router.add_route(method, r"/{prefix:.*}v1/responses/{id:resp_\w+}", _stored_response)
    app.router.add_get(r"/{prefix:.*}v1/responses/{id:resp_\w+}/input_items", _stored_response)
    app.router.add_post("/{tail:.*}", _post)
    return app
