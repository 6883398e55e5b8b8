"""Reading usage from answers and event streams, and estimating it before a request runs."""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.errors import RateLimited
from extproc.pipeline.metering import Meter
from extproc.pipeline.relay import StreamRelay
from extproc.sse import Block, Event, EventParser, EventTooLarge
from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.openai import OPENAI
from extproc.translators.schema import WireSchema
from extproc.translators.translation import Translation
from extproc.usage import Usage, estimate_tokens

OPENAI_STREAM = (
    b": keep-alive\r\n\r\n"
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}\r\n\r\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"lo"}}]}\n\n'
    b"event: note\ndata: line one\ndata: line two\n\n"
    b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}\r\r'
    b"data: [DONE]\n\n"
)


def parse_in_pieces(data: bytes, cuts: list[int]) -> list[Block]:
    parser = EventParser()
    blocks: list[Block] = []
    start = 0
    for cut in [*cuts, len(data)]:
        blocks += parser.feed(data[start:cut], end=cut == len(data))
        start = cut
    return blocks


def test_events_parse_the_same_whatever_the_chunking() -> None:
    whole = parse_in_pieces(OPENAI_STREAM, [])
    events = [block.event for block in whole]
    assert events[0] is None  # the keep-alive comment
    assert [event.name for event in events[1:] if event] == [None, None, "note", None, None]
    assert events[3] == Event("note", "line one\nline two")
    assert b"".join(block.raw for block in whole) == OPENAI_STREAM
    for cut in range(1, len(OPENAI_STREAM)):
        assert parse_in_pieces(OPENAI_STREAM, [cut]) == whole, cut
    assert parse_in_pieces(OPENAI_STREAM, list(range(1, len(OPENAI_STREAM)))) == whole


def reference_blocks(data: bytes) -> list[Block]:
    """The blocks of a whole stream, its lines split by a regex (the standard's three line
    ends): an oracle for the parser's own scanning."""
    blocks: list[Block] = []
    raw, values, name = b"", [], None
    lines = re.findall(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", data)
    for line in [*lines, b""]:  # (the end flushes a last block)
        if not line and not raw:
            break
        raw += line
        if text := line.rstrip(b"\r\n"):
            field, _, value = text.partition(b":")
            value = value.removeprefix(b" ")
            if field == b"data":
                values.append(value.decode("utf-8", "replace"))
            elif field == b"event":
                name = value.decode("utf-8", "replace")
            continue
        blocks.append(Block(raw, Event(name, "\n".join(values)) if values else None))
        raw, values, name = b"", [], None
    return blocks


LINES = st.sampled_from([b"data: a", b'data: {"x": 1}', b"data:b", b"event: e", b": ping", b""])
LINE_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])


@given(
    st.lists(st.tuples(LINES, LINE_ENDS), max_size=40),
    st.binary(max_size=8),
    st.lists(st.integers(min_value=1, max_value=500), max_size=10),
)
def test_lines_end_where_the_standard_says_whatever_the_chunking(
    lines: list[tuple[bytes, bytes]], tail: bytes, cuts: list[int]
) -> None:
    data = b"".join(text + end for text, end in lines) + tail.replace(b"\r", b"").replace(
        b"\n", b""
    )
    assert parse_in_pieces(data, sorted({cut for cut in cuts if cut < len(data)})) == (
        reference_blocks(data)
    )


def test_an_event_over_the_limit_is_refused_after_those_before_it() -> None:
    parser = EventParser(limit=100)
    assert parser.feed(b"data: small\n\n" + b"data: " + b"x" * 50) == [
        Block(b"data: small\n\n", Event(None, "small"))
    ]
    with pytest.raises(EventTooLarge) as refused:
        parser.feed(b"x" * 60)
    assert refused.value.before == []
    # A limit counts one event, wherever its lines end: many small events pass.
    many = EventParser(limit=100)
    assert len(many.feed(b"data: 0123456789\n\n" * 1000, end=True)) == 1000


def passing_through(schema: WireSchema = OPENAI, *, hide_usage: bool = False) -> Translation:
    """The translation of a call whose client and provider speak the same schema."""
    assert schema.client is not None
    return Translation(schema.client, schema.provider, "chat", "m", hide_usage=hide_usage)


def relay(schema: WireSchema = OPENAI, *, hide_usage: bool = False) -> StreamRelay:
    return StreamRelay(passing_through(schema, hide_usage=hide_usage), started=0.0)


def test_stream_usage_prefers_the_reported_figures() -> None:
    stream = relay()
    stream.feed(OPENAI_STREAM, end=True)
    assert stream.usage.done
    assert stream.usage.reported() == Usage(12, 2)


def test_anthropic_stream_reports_input_first_and_output_last() -> None:
    stream = relay(ANTHROPIC)
    usage = {"input_tokens": 30, "cache_read_input_tokens": 10, "output_tokens": 1}
    for payload in (
        {"type": "message_start", "message": {"usage": usage}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "message_delta", "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    ):
        stream.feed(b"data: " + orjson.dumps(payload) + b"\n\n", end=False)
    assert stream.usage.reported() == Usage(40, 7, cached_input_tokens=10)
    assert stream.usage.done


def meter(*, hide_usage: bool = False) -> Meter:
    return Meter(Usage(40, 500), passing_through(hide_usage=hide_usage), started=0.0)


def test_a_cut_stream_is_estimated_from_its_content() -> None:
    stream = meter()
    assert stream.on_headers(200, "text/event-stream; charset=utf-8")
    assert stream.relay is not None
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * 40 + b'"}}]}\n\n'
    stream.relay.feed(chunk * 3, end=False)
    assert stream.usage(500) == Usage(40, 30)


INJECTED = (
    b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\n'
    b": keep-alive\n\n"
    b'data: {"id":"a","choices":[{"index":0,"delta":{"content":" there"}}],"usage":null}\n\n'
    b'data: {"id":"a","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)
AS_ASKED = (
    b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
    b": keep-alive\n\n"
    b'data: {"id":"a","choices":[{"index":0,"delta":{"content":" there"}}]}\n\n'
    b"data: [DONE]\n\n"
)


def relay_in_pieces(stream: StreamRelay, data: bytes, size: int) -> bytes:
    out = b""
    for start in range(0, len(data), size):
        end = start + size >= len(data)
        out += b"".join(piece.raw for piece in stream.feed(data[start : start + size], end=end))
    return out


@pytest.mark.parametrize("size", [1, 2, 7, 64, 10_000])
def test_injected_usage_is_read_and_hidden(size: int) -> None:
    stream = relay(hide_usage=True)
    assert relay_in_pieces(stream, INJECTED, size) == AS_ASKED
    assert stream.usage.reported() == Usage(9, 2)


@pytest.mark.parametrize("size", [1, 5, 10_000])
def test_a_stream_the_client_asked_usage_for_passes_byte_for_byte(size: int) -> None:
    assert relay_in_pieces(relay(), INJECTED, size) == INJECTED


def test_ending_a_stream_early_speaks_each_api() -> None:
    error = RateLimited("Limit reached during the stream.")
    openai_end = relay().stop(error)
    first, second, rest = openai_end.split(b"\n\n")
    assert orjson.loads(first.removeprefix(b"data: "))["error"]["code"] == "rate_limit_exceeded"
    assert (second, rest) == (b"data: [DONE]", b"")
    anthropic_end = relay(ANTHROPIC).stop(error)
    assert anthropic_end.startswith(b"event: error\ndata: ")
    assert orjson.loads(anthropic_end.split(b"data: ")[1])["error"]["type"] == "rate_limit_error"


def test_time_to_first_token_and_per_token() -> None:
    now = [0.0]
    stream = StreamRelay(passing_through(hide_usage=True), started=0.0, clock=lambda: now[0])
    blocks = INJECTED.split(b"\n\n")
    now[0] = 0.25
    stream.feed(blocks[0] + b"\n\n", end=False)
    now[0] = 0.35
    stream.feed(b"\n\n".join(blocks[1:]), end=True)
    timing = stream.timing()
    assert timing.first_token == 0.25
    assert timing.per_output_token == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"usage":{"prompt_tokens":5,"completion_tokens":9}}', Usage(5, 9)),
        (
            200,
            b'{"usage":{"prompt_tokens":105,"completion_tokens":9,'
            b'"prompt_tokens_details":{"cached_tokens":100},'
            b'"completion_tokens_details":{"reasoning_tokens":4}}}',
            Usage(105, 9, cached_input_tokens=100, reasoning_tokens=4),
        ),
        (200, b"not json", Usage(40, 500)),
        (500, b'{"error":{"message":"boom"}}', None),
        (429, b'{"usage":{"prompt_tokens":5,"completion_tokens":9}}', None),
    ],
)
def test_json_answers_settle_on_their_usage(
    status: int, body: bytes, expected: Usage | None
) -> None:
    answer = meter()
    assert not answer.on_headers(status, "application/json")
    answer.on_json_body(body, end=True)
    assert answer.usage(500) == expected


def test_no_answer_at_all_refunds() -> None:
    assert meter().usage(500) is None


def test_estimates_cover_the_prompt_and_the_requested_output() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}], "n": 2}
    openai, anthropic = OPENAI.provider, ANTHROPIC.provider
    assert estimate_tokens([chat["messages"]]) >= 100
    assert openai.output_cap("chat", chat) is None
    assert openai.output_cap("chat", chat | {"max_completion_tokens": 50}) == 100
    assert openai.output_cap("text_completion", {"prompt": "hi"}) == 16
    assert openai.output_cap("embeddings", {"input": "hi"}) == 0
    assert openai.with_output_cap("chat", chat | {"max_tokens": 500}, 100)["max_tokens"] == 50
    assert anthropic.with_output_cap("chat", {"max_tokens": 500}, 30) == {"max_tokens": 30}


def test_usage_is_read_in_each_spelling() -> None:
    assert OPENAI.provider.read_usage({"usage": {"prompt_tokens": 3}}) == Usage(3, 0)
    assert OPENAI.provider.read_usage({"usage": None}) is None
    assert OPENAI.provider.read_usage(["not", "an", "object"]) is None
    anthropic = {"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 9}
    assert ANTHROPIC.provider.read_usage(
        {"usage": anthropic | {"cache_creation_input_tokens": 7}}
    ) == Usage(112, 9, cached_input_tokens=100, cache_write_tokens=7)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=20,
)


@given(st.lists(JSON, max_size=4))
def test_the_estimate_measures_the_values_json_without_writing_it_whole(values: list[Any]) -> None:
    written = sum(len(orjson.dumps(value)) for value in values)
    assert estimate_tokens(values) == math.ceil(written / 4)
