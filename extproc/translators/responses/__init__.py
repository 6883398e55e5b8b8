"""OpenAI's Responses API: what coding agents (Codex CLI, the OpenAI Agents SDK) speak.
OpenAI-kind providers that offer it get it as it is; for the others it is translated. Errors
have OpenAI's shape."""

from extproc.translators.openai import errors
from extproc.translators.responses import answer, request, stream
from extproc.translators.schema import ClientSide, ProviderSide, WireSchema

RESPONSES = WireSchema(
    name="responses",
    provider=ProviderSide(
        operations=frozenset({"chat"}),
        model_in_body=True,
        input_fields=request.INPUT_FIELDS,
        output_cap=request.output_cap,
        with_output_cap=request.with_output_cap,
        build_chat=None,  # only its own clients' calls reach it, passed through
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
    ),
)

__all__ = ["RESPONSES"]
