"""OpenAI's Chat Completions, Completions and Embeddings APIs: what OpenAI clients speak, and
OpenAI, Azure OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, …) answer."""

from extproc.translators.openai import answer, errors, request, stream
from extproc.translators.schema import ClientSide, ProviderSide, WireSchema

OPENAI = WireSchema(
    name="openai",
    provider=ProviderSide(
        operations=frozenset({"chat", "text_completion", "embeddings"}),
        model_in_body=True,
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
        merge_options=request.merge_options,
        with_stream_usage=request.with_stream_usage,
        without_usage=stream.without_usage,
    ),
    client=ClientSide(
        parse_chat=request.parse_chat,
        parse_embeddings=request.parse_embeddings,
        build_chat_answer=answer.build_chat_answer,
        build_embeddings_answer=answer.build_embeddings_answer,
        encoder=stream.StreamEncoder,
        stream_error=stream.stream_error,
        build_error=errors.build_error,
        is_native_error=errors.is_native_error,
        final_usage=stream.final_usage,
    ),
)

__all__ = ["OPENAI"]
