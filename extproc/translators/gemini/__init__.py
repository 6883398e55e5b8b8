"""Google's Gemini API (`generateContent`, `streamGenerateContent`, `batchEmbedContents`):
providers only speak it; OpenAI and Anthropic clients reach it through translation."""

from extproc.translators.gemini import answer, errors, request, stream
from extproc.translators.schema import ProviderSide, WireSchema

GEMINI = WireSchema(
    name="gemini",
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
    ),
)

__all__ = ["GEMINI"]
