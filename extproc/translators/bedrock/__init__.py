"""Amazon Bedrock's Converse API: one request and answer shape for every model family Bedrock
serves. Only providers speak it; every client schema is translated to it."""

from extproc.eventstream import EVENT_STREAM_TYPE, EventStreamParser
from extproc.translators.bedrock import answer, errors, request, stream
from extproc.translators.schema import ProviderSide, WireSchema

BEDROCK = WireSchema(
    name="bedrock",
    provider=ProviderSide(
        operations=frozenset({"chat", "embeddings"}),
        model_in_body=False,
        input_fields=request.INPUT_FIELDS,
        output_cap=request.output_cap,
        with_output_cap=request.with_output_cap,
        build_chat=request.build_chat,
        build_embeddings=request.build_embeddings,
        read_usage=answer.read_usage,
        read_model=answer.read_model,
        read_text=answer.read_text,
        parse_chat_answer=answer.parse_chat_answer,
        parse_embeddings_answer=answer.parse_embeddings_answer,
        decoder=stream.StreamDecoder,
        parse_error=errors.parse_error,
        framer=EventStreamParser,
        stream_type=EVENT_STREAM_TYPE,
    ),
)

__all__ = ["BEDROCK"]
