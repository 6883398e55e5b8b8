"""Reading bodies out of, and writing answers around, the protobuf wire format by hand —
held to upb's reading of the same bytes."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import DecodeError
from google.protobuf.struct_pb2 import Struct
from hypothesis import given
from hypothesis import strategies as st

from extproc.envoyapi.messages import (
    WrittenAnswer,
    amend_response_headers,
    read_wire,
    replace_request,
    replace_response_body,
)
from extproc.envoyapi.protos.envoy.config.core.v3 import base_pb2
from extproc.envoyapi.protos.envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import (
    ProcessingMode,
)
from extproc.envoyapi.protos.envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from extproc.envoyapi.wire import metadata_answer, read_body

bodies = st.binary(max_size=300) | st.integers(16_384, 20_000).map(lambda size: b"x" * size)
"""Bodies whose length takes one to three bytes to write."""
PIECES = st.one_of(
    st.builds(
        lambda data, end: ext_proc.ProcessingRequest(
            request_body=ext_proc.HttpBody(body=data, end_of_stream=end)
        ),
        bodies,
        st.booleans(),
    ),
    st.builds(
        lambda data, end: ext_proc.ProcessingRequest(
            response_body=ext_proc.HttpBody(body=data, end_of_stream=end)
        ),
        bodies,
        st.booleans(),
    ),
    st.builds(
        lambda name: ext_proc.ProcessingRequest(
            request_headers=ext_proc.HttpHeaders(
                headers=base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=name, value="v")])
            )
        ),
        st.text(max_size=10),
    ),
    st.builds(
        lambda key: ext_proc.ProcessingRequest(
            metadata_context=base_pb2.Metadata(filter_metadata={"extproc": Struct()}),
            attributes={key: Struct()},
        ),
        st.text(max_size=10),
    ),
    st.builds(lambda on: ext_proc.ProcessingRequest(observability_mode=on), st.booleans()),
)


def upb_view(data: bytes) -> tuple[str | None, bytes, bool]:
    request = ext_proc.ProcessingRequest.FromString(data)
    phase = request.WhichOneof("request")
    if phase not in ("request_body", "response_body"):
        return phase, b"", False
    body = getattr(request, phase)
    return phase, body.body, body.end_of_stream


@given(st.lists(PIECES, min_size=1, max_size=4))
def test_a_body_is_read_as_upb_reads_it(pieces: list[ext_proc.ProcessingRequest]) -> None:
    # Serialised messages one after the other are one message: later fields win or merge.
    data = b"".join(piece.SerializeToString() for piece in pieces)
    read = read_body(memoryview(data))
    expected = upb_view(data)
    phases = {piece.WhichOneof("request") for piece in pieces} - {None}
    if phases and phases <= {"request_body", "response_body"}:
        assert read is not None, "a message of body phases only is read by hand"
    if read is None:
        assert expected[0] not in ("request_body", "response_body") or phases - {expected[0]}
    else:
        phase, body, end = read
        assert (phase, bytes(body), end) == expected


@given(st.binary(max_size=200))
def test_bytes_that_are_not_a_body_message_are_left_to_upb(data: bytes) -> None:
    read = read_body(memoryview(data))
    if read is None:
        return
    phase, body, end = read
    assert (phase, bytes(body), end) == upb_view(data)


def test_a_request_body_is_a_view_of_what_was_received() -> None:
    data = bytearray(
        ext_proc.ProcessingRequest(
            request_body=ext_proc.HttpBody(body=b"x" * 1000, end_of_stream=True)
        ).SerializeToString()
    )
    message = read_wire(memoryview(data))
    assert isinstance(message.body, memoryview) and message.body.obj is data
    with pytest.raises(DecodeError):
        read_wire(memoryview(b"\x12\xff\xff"))


def upb_mutation(headers: list[tuple[str, str]], removed: list[str]) -> ext_proc.HeaderMutation:
    """The header mutation as upb builds it (the oracle of the hand-written answers)."""
    return ext_proc.HeaderMutation(
        set_headers=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=name, raw_value=value.encode()),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
            for name, value in headers
        ],
        remove_headers=removed,
    )


@given(
    body=bodies,
    headers=st.lists(st.tuples(st.sampled_from(["a", "b", ":path"]), st.text(max_size=20))),
    removed=st.lists(st.sampled_from(["x", "y"])),
    shared=st.none() | st.dictionaries(st.sampled_from(["span", "t"]), st.text(max_size=8)),
)
def test_an_answer_written_around_its_body_is_the_message_upb_would_write(
    body: bytes,
    headers: list[tuple[str, str]],
    removed: list[str],
    shared: dict[str, str] | None,
) -> None:
    answer = replace_request(set_headers=headers, remove_headers=removed, body=body, shared=shared)
    expected = ext_proc.ProcessingResponse(
        request_body=ext_proc.BodyResponse(
            response=ext_proc.CommonResponse(
                header_mutation=upb_mutation(headers, removed),
                body_mutation=ext_proc.BodyMutation(body=body),
                clear_route_cache=True,
            )
        )
    )
    if shared:
        expected.dynamic_metadata.update({"extproc": shared})
    assert isinstance(answer, WrittenAnswer)
    assert ext_proc.ProcessingResponse.FromString(b"".join(answer.pieces)) == expected

    response = replace_response_body(body, set_headers=headers)
    parsed = ext_proc.ProcessingResponse.FromString(b"".join(response.pieces))
    assert parsed.response_body.response.body_mutation.body == body
    assert len(parsed.response_body.response.header_mutation.set_headers) == len(headers)


@given(
    headers=st.lists(st.tuples(st.sampled_from(["a", "x-ratelimit-b"]), st.text(max_size=20))),
    removed=st.lists(st.sampled_from(["content-length", "y"])),
    body=st.sampled_from([None, "relay", "whole", "skip"]),
)
def test_an_answer_to_response_headers_is_the_message_upb_would_write(
    headers: list[tuple[str, str]], removed: list[str], body: Any
) -> None:
    answer = amend_response_headers(headers, remove_headers=removed, body=body)
    mutation = upb_mutation(headers, removed)
    expected = ext_proc.ProcessingResponse(
        response_headers=ext_proc.HeadersResponse(
            response=ext_proc.CommonResponse(header_mutation=mutation)
        )
    )
    mode = ProcessingMode
    overrides = {
        "relay": mode(
            response_body_mode=mode.FULL_DUPLEX_STREAMED, response_trailer_mode=mode.SEND
        ),
        "whole": mode(response_body_mode=mode.BUFFERED),
        "skip": mode(response_body_mode=mode.NONE),
    }
    if body is not None:
        expected.mode_override.CopyFrom(overrides[body])
    parsed = ext_proc.ProcessingResponse.FromString(b"".join(answer.pieces))
    assert parsed == expected
    assert parsed.response_headers.HasField("response")


def test_dynamic_metadata_written_by_hand_is_what_protobuf_writes() -> None:
    values = {"cost_usd": 0.000123, "input_tokens": 8.0, "output_tokens": 1_000_000.0}
    expected = ext_proc.ProcessingResponse()
    expected.dynamic_metadata.update({"extproc": values})
    parsed = ext_proc.ProcessingResponse.FromString(metadata_answer("extproc", values))
    assert parsed == expected
    # Appended to another answer, it merges into it (as Envoy parses the concatenation).
    answer = ext_proc.ProcessingResponse(response_body=ext_proc.BodyResponse())
    merged = ext_proc.ProcessingResponse.FromString(
        answer.SerializeToString() + metadata_answer("extproc", values)
    )
    assert merged.HasField("response_body") and merged.dynamic_metadata == expected.dynamic_metadata
