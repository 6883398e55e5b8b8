"""Reading a request body: what a client may send and what it gets back for it."""

from __future__ import annotations

import pytest

from extproc.endpoints.body import parse_body
from extproc.errors import BadRequest


def test_integers_beyond_64_bits_become_floats_everywhere_in_the_body() -> None:
    body = parse_body(
        b'{"max_tokens": 123456789012345678901234567890, "tools": [{"max": -99999999999999999999,'
        b' "ok": 18446744073709551615}], "id": "1234567890123456789012"}'
    )
    assert body["max_tokens"] == pytest.approx(1.2345678901234568e29)
    assert body["tools"] == [{"max": -1e20, "ok": 18446744073709551615}]
    assert body["id"] == "1234567890123456789012"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": 1e400}', "not valid JSON"),
        (b'{"m": "\xff"}', "not valid JSON"),
        (b'{"a": 1} trailing', "not valid JSON"),
        (b"", "empty"),
        (b"[]", "must be a JSON object"),
    ],
)
def test_a_body_that_is_no_json_object_is_a_clear_400(raw: bytes, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        parse_body(raw)


def test_a_view_of_the_received_bytes_is_released_once_read() -> None:
    received = bytearray(b'\xef\xbb\xbf{"model": "m"}')
    view = memoryview(received)
    assert parse_body(view) == {"model": "m"}
    with pytest.raises(ValueError, match="released"):
        view.tobytes()
    received.extend(b" ")  # nothing shows it any more: it may change size again
