"""Reading usage from answers and event streams, and estimating it before a request runs."""

from __future__ import annotations

import orjson
import pytest

from extproc.pipeline.metering import Meter
from extproc.sse import Event, EventParser
from extproc.usage import (
    StreamUsage,
    Usage,
    estimate_input_tokens,
    read_usage,
    requested_output_cap,
    with_output_cap,
)

OPENAI_STREAM = (
    b": keep-alive\r\n\r\n"
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}\r\n\r\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"lo"}}]}\n\n'
    b"event: note\ndata: line one\ndata: line two\n\n"
    b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}\r\r'
    b"data: [DONE]\n\n"
)


def parse_in_pieces(data: bytes, cuts: list[int]) -> list[Event]:
    parser = EventParser()
    events: list[Event] = []
    start = 0
    for cut in [*cuts, len(data)]:
        events += parser.feed(data[start:cut], end=cut == len(data))
        start = cut
    return events


def test_events_parse_the_same_whatever_the_chunking() -> None:
    whole = parse_in_pieces(OPENAI_STREAM, [])
    assert [event.name for event in whole] == [None, None, "note", None, None]
    assert whole[2].data == "line one\nline two"
    assert whole[-1].data == "[DONE]"
    for cut in range(1, len(OPENAI_STREAM)):
        assert parse_in_pieces(OPENAI_STREAM, [cut]) == whole, cut
    assert parse_in_pieces(OPENAI_STREAM, list(range(1, len(OPENAI_STREAM)))) == whole


def test_stream_usage_prefers_the_reported_figures() -> None:
    usage = StreamUsage()
    for event in EventParser().feed(OPENAI_STREAM, end=True):
        usage.observe(event)
    assert usage.done
    assert usage.reported() == Usage(12, 2)


def test_anthropic_stream_reports_input_first_and_output_last() -> None:
    usage = StreamUsage()
    for payload in (
        {"type": "message_start", "message": {"usage": {"input_tokens": 30, "output_tokens": 1}}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi there"}},
        {"type": "message_delta", "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    ):
        usage.observe(Event(payload["type"], orjson.dumps(payload).decode()))  # type: ignore[arg-type]
    assert usage.reported() == Usage(30, 7)
    assert usage.done


def test_a_cut_stream_is_estimated_from_its_content() -> None:
    meter = Meter(Usage(input_tokens=40, output_tokens=500))
    assert meter.on_headers(200, "text/event-stream; charset=utf-8")
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * 40 + b'"}}]}\n\n'
    meter.on_body(chunk * 3, end=False)
    assert meter.usage() == Usage(40, 30)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"usage":{"prompt_tokens":5,"completion_tokens":9}}', Usage(5, 9)),
        (
            200,
            b'{"usage":{"input_tokens":5,"cache_read_input_tokens":100,"output_tokens":9}}',
            Usage(105, 9),
        ),
        (200, b"not json", Usage(40, 500)),
        (500, b'{"error":{"message":"boom"}}', None),
        (429, b'{"usage":{"prompt_tokens":5,"completion_tokens":9}}', None),
    ],
)
def test_json_answers_settle_on_their_usage(
    status: int, body: bytes, expected: Usage | None
) -> None:
    meter = Meter(Usage(input_tokens=40, output_tokens=500))
    assert not meter.on_headers(status, "application/json")
    meter.on_body(body, end=True)
    assert meter.usage() == expected


def test_no_answer_at_all_refunds() -> None:
    assert Meter(Usage(1, 1)).usage() is None


def test_estimates_cover_the_prompt_and_the_requested_output() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}], "n": 2}
    assert estimate_input_tokens("chat", chat) >= 100
    assert requested_output_cap("chat", chat) is None
    assert requested_output_cap("chat", chat | {"max_completion_tokens": 50}) == 100
    assert requested_output_cap("text_completion", {"prompt": "hi"}) == 16
    assert requested_output_cap("embeddings", {"input": "hi"}) == 0
    assert with_output_cap("chat", chat | {"max_tokens": 500}, 100)["max_tokens"] == 50
    assert with_output_cap("messages", {"max_tokens": 500}, 30) == {"max_tokens": 30}


def test_usage_is_read_in_both_spellings() -> None:
    assert read_usage({"usage": {"prompt_tokens": 3, "total_tokens": 3}}) == Usage(3, 0)
    assert read_usage({"usage": None}) is None
    assert read_usage(["not", "an", "object"]) is None
