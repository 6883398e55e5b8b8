"""Anthropic's Messages API: what Anthropic clients (and Claude Code) speak, and Anthropic
answers."""

from extproc.translators.anthropic import answer, errors, request, stream
from extproc.translators.schema import ClientSide, ProviderSide, WireSchema

ANTHROPIC = WireSchema(
    name="anthropic",
    provider=ProviderSide(
        operations=frozenset({"chat"}),
        model_in_body=True,
        input_fields=request.INPUT_FIELDS,
        output_cap=request.output_cap,
        with_output_cap=request.with_output_cap,
        build_chat=request.build_chat,
        build_embeddings=None,
        read_usage=answer.read_usage,
        read_model=answer.read_model,
        read_text=answer.read_text,
        parse_chat_answer=answer.parse_chat_answer,
        parse_embeddings_answer=None,
        decoder=stream.StreamDecoder,
        parse_error=errors.parse_error,
    ),
    client=ClientSide(
        parse_chat=request.parse_chat,
        parse_embeddings=None,
        build_chat_answer=answer.build_chat_answer,
        build_embeddings_answer=None,
        encoder=stream.StreamEncoder,
        stream_error=stream.stream_error,
        build_error=errors.build_error,
        is_native_error=errors.is_native_error,
        final_usage=stream.final_usage,
        passed_through=request.without_gateway_thinking,
    ),
)

__all__ = ["ANTHROPIC"]
