"""The request path over raw HTTP: hostile inputs, header hygiene, limits, secrets."""

from __future__ import annotations

import collections
import socket
from pathlib import Path

import httpx
import orjson
import pytest
from mockprovider.app import CREDENTIALS

from tests.conftest import ALL_SECRETS, ANTHROPIC_KEY, GATEWAY_KEY, OPENAI_KEY, PROVIDER_KEYS
from tests.harness import HTTP, MockProvider, RunningGateway, assert_openai_error, sha256

pytestmark = pytest.mark.envoy

AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def post(
    gateway: RunningGateway, body: bytes | dict[str, object], **headers: str
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return HTTP.post(
        gateway.url + "/v1/chat/completions",
        content=content,
        headers={**AUTH, "content-type": "application/json", **headers},
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[]", None),
        (b'"x"', None),
        (b"null", None),
        (b"\xff\xfe{}", None),
        (b"[" * 5000 + b"]" * 5000, None),
        (b'{"model": "gpt-4o", "max_tokens": 1e999999, "messages": []}', None),
        (b'{"model": 99999999999999999999999999, "messages": []}', "model"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": 4, "messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "", "messages": [{"role": "user", "content": "x"}]}', "model"),
        (
            b'{"model": "gpt-4o\\r\\nx-evil: 1", "messages": [{"role": "user", "content": "x"}]}',
            "model",
        ),
        (
            orjson.dumps({"model": "m" * 300, "messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (orjson.dumps(CHAT | {"stream": "yes"}), "stream"),
        (orjson.dumps(CHAT | {"stream": True, "stream_options": "usage"}), "stream_options"),
        (orjson.dumps(CHAT | {"max_tokens": -5}), "max_tokens"),
        (orjson.dumps(CHAT | {"n": 100000}), "n"),
        (orjson.dumps(CHAT | {"messages": "hello"}), "messages"),
        (orjson.dumps(CHAT | {"api_base": "http://evil.example"}), "api_base"),
        (orjson.dumps(CHAT | {"base_url": "http://evil.example"}), "base_url"),
    ],
)
def test_bad_bodies_get_400_and_nothing_goes_upstream(
    gateway: RunningGateway, mock: MockProvider, body: bytes, param: str | None
) -> None:
    mock.clear()

    error = assert_openai_error(post(gateway, body), 400)

    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert mock.requests() == []


def test_bom_before_json_is_accepted(gateway: RunningGateway) -> None:
    assert post(gateway, b"\xef\xbb\xbf" + orjson.dumps(CHAT)).status_code == 200


def test_unknown_model_names_with_paths_or_urls_are_just_unknown(gateway: RunningGateway) -> None:
    for model in ("../../etc/passwd", "http://evil.example/v1", "openai/../azure-gpt"):
        error = assert_openai_error(post(gateway, CHAT | {"model": model}), 404)
        assert error["code"] == "model_not_found"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": f"Token {GATEWAY_KEY}"},
        {"authorization": "Bearer"},
        {"authorization": f"Bearer {GATEWAY_KEY}", "x-api-key": "sk-other-key"},
        {"authorization": "Bearer sk-gw-\u00e9\u00e9"},
    ],
)
def test_bad_credentials_get_401(
    gateway: RunningGateway, mock: MockProvider, headers: dict[str, str]
) -> None:
    mock.clear()
    raw_headers = [(k.encode(), v.encode("utf-8")) for k, v in headers.items()]
    response = HTTP.post(
        gateway.url + "/v1/chat/completions", content=orjson.dumps(CHAT), headers=raw_headers
    )

    assert_openai_error(response, 401)
    assert mock.requests() == []


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"bearer   {GATEWAY_KEY}"},
        {"api-key": GATEWAY_KEY},
        {"x-api-key": GATEWAY_KEY},
        {"authorization": f"Bearer {GATEWAY_KEY}", "x-api-key": GATEWAY_KEY},
    ],
)
def test_key_accepted_in_every_header_the_sdks_use(
    gateway: RunningGateway, mock: MockProvider, headers: dict[str, str]
) -> None:
    mock.clear()
    response = HTTP.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=headers)

    assert response.status_code == 200, response.text
    upstream = mock.last_request()["headers"]
    assert "api-key" not in upstream and "x-api-key" not in upstream
    assert upstream["authorization"] == "sha256:" + sha256(f"Bearer {OPENAI_KEY}")


def test_client_cannot_pick_the_provider_or_spoof_internal_headers(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    response = post(gateway, CHAT, **{"x-extproc-route": "anthropic", "x-extproc-other": "1"})

    assert response.status_code == 200
    upstream = mock.last_request()
    assert upstream["path"] == "/v1/chat/completions", "served by the configured openai provider"
    assert not [name for name in upstream["headers"] if name.startswith("x-extproc-")]
    assert not [name for name in response.headers if name.startswith("x-extproc-")], "opt-in"


def test_anthropic_messages_pass_through_with_provider_headers(
    gateway: RunningGateway, mock: MockProvider
) -> None:
    mock.clear()
    response = HTTP.post(
        gateway.url + "/v1/messages",
        json={"model": "claude", "max_tokens": 32, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"
    upstream = mock.last_request()
    assert upstream["headers"]["x-api-key"] == "sha256:" + sha256(ANTHROPIC_KEY)
    assert upstream["headers"]["anthropic-version"] == "2023-06-01"
    assert upstream["body"]["model"] == "claude-sonnet-4-5"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/embeddings", {"model": "claude", "input": "x"}),
        ("/v1/completions", {"model": "claude", "prompt": "x"}),
        ("/v1/completions", {"model": "gemini", "prompt": "x"}),
    ],
)
def test_an_endpoint_the_provider_does_not_offer_is_a_clear_400(
    gateway: RunningGateway, mock: MockProvider, path: str, body: dict[str, object]
) -> None:
    mock.clear()
    response = HTTP.post(gateway.url + path, json=body, headers=AUTH)

    error = assert_openai_error(response, 400)
    assert error["code"] == "unsupported_endpoint"
    assert mock.requests() == []


def test_one_mebibyte_prompt_goes_through(gateway: RunningGateway, mock: MockProvider) -> None:
    mock.clear()
    prompt = "x" * (1024 * 1024)

    response = post(gateway, CHAT | {"messages": [{"role": "user", "content": prompt}]})

    assert response.status_code == 200, response.text
    assert mock.last_request()["body"]["messages"][0]["content"] == prompt


def test_body_over_the_limit_gets_413_json(gateway: RunningGateway, mock: MockProvider) -> None:
    mock.clear()
    prompt = "x" * (5 * 1024 * 1024)

    response = post(gateway, CHAT | {"messages": [{"role": "user", "content": prompt}]})

    assert assert_openai_error(response, 413)["code"] == "request_too_large"
    assert mock.requests() == []


def test_chunked_upload_without_length(gateway: RunningGateway, mock: MockProvider) -> None:
    mock.clear()

    def chunks():  # type: ignore[no-untyped-def]
        data = orjson.dumps(CHAT)
        yield data[:10]
        yield data[10:]

    response = HTTP.post(gateway.url + "/v1/chat/completions", content=chunks(), headers=AUTH)

    assert response.status_code == 200, response.text
    upstream = mock.last_request()["headers"]
    assert int(upstream["content-length"]) == len(orjson.dumps(mock.last_request()["body"]))


def test_http2_without_content_length(gateway: RunningGateway) -> None:
    with httpx.Client(http1=False, http2=True) as h2:
        response = h2.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.http_version == "HTTP/2"


def test_unknown_path_and_wrong_method(gateway: RunningGateway) -> None:
    assert assert_openai_error(HTTP.get(gateway.url + "/v1/nope", headers=AUTH), 404)
    assert assert_openai_error(HTTP.get(gateway.url + "/v1/chat/completions", headers=AUTH), 405)
    assert assert_openai_error(HTTP.post(gateway.url + "/v1/models", headers=AUTH), 405)


def test_weighted_targets_split_traffic(gateway: RunningGateway, mock: MockProvider) -> None:
    mock.clear()
    for _ in range(200):
        assert post(gateway, CHAT | {"model": "split"}).status_code == 200

    counts = collections.Counter(request["body"]["model"] for request in mock.requests())

    assert set(counts) == {"upstream-a", "upstream-b"}
    assert 0.6 < counts["upstream-a"] / 200 < 0.9, counts


def test_no_secret_in_responses_or_logs(gateway: RunningGateway, mock: MockProvider) -> None:
    responses = [
        post(gateway, CHAT),
        post(gateway, CHAT, authorization="Bearer sk-wrong"),
        post(gateway, CHAT | {"model": "claude"}),
        post(gateway, CHAT | {"model": "gemini"}),
        post(gateway, CHAT | {"model": "gemini", "stream": True}),
        post(gateway, CHAT | {"model": "gemini"}, **{"x-mock-status": "403"}),
        post(gateway, CHAT | {"model": "claude", "stream": True}, **{"x-mock-status": "401"}),
        post(gateway, b"{bad"),
        post(gateway, CHAT, **{"x-mock-status": "500"}),
        HTTP.get(gateway.url + "/v1/models", headers=AUTH),
    ]
    exposed = b"".join(
        response.content + str(response.headers.multi_items()).encode() for response in responses
    )
    exposed += Path(gateway.log_path).read_bytes()
    exposed += orjson.dumps(mock.requests())

    for secret in ALL_SECRETS:
        assert secret.encode() not in exposed, "a key leaked"
    # The mock records credentials as digests: each one must be a provider key's.
    sent = {
        value
        for request in mock.requests()
        for name, value in request["headers"].items()
        if name in CREDENTIALS
    }
    provider_forms = {
        "sha256:" + sha256(form)
        for key in PROVIDER_KEYS.values()
        for form in (key, f"Bearer {key}")
    }
    assert sent and sent <= provider_forms, "a credential upstream is not a provider key"


def test_expect_100_continue(gateway: RunningGateway) -> None:
    body = orjson.dumps(CHAT | {"messages": [{"role": "user", "content": "x" * 5000}]})
    host, port = gateway.url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {GATEWAY_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(head.encode())
        assert connection.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        connection.sendall(body)
        assert connection.recv(65536).startswith(b"HTTP/1.1 200 OK")


def test_oversized_headers_get_a_json_431(gateway: RunningGateway) -> None:
    response = HTTP.get(gateway.url + "/v1/models", headers=AUTH | {"x-long": "x" * 70_000})

    assert assert_openai_error(response, 431)["code"] == "headers_too_large"


def test_garbage_instead_of_http_gets_a_json_400(gateway: RunningGateway) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = connection.recv(65536)

    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/json" in head.lower()
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"
