"""HTTP filters other than the processor's: compression both ways on the listener, and the
upstream filters of provider and alias clusters."""

from __future__ import annotations

from envoy_data_plane.envoy.config.common.mutation_rules.v3 import HeaderMutation as MutationRule
from envoy_data_plane.envoy.config.core.v3 import (
    RuntimeFeatureFlag,
    TypedExtensionConfig,
)
from envoy_data_plane.envoy.extensions.compression.gzip.compressor.v3 import Gzip as GzipCompressor
from envoy_data_plane.envoy.extensions.compression.gzip.decompressor.v3 import (
    Gzip as GzipDecompressor,
)
from envoy_data_plane.envoy.extensions.filters.http.compressor.v3 import Compressor
from envoy_data_plane.envoy.extensions.filters.http.decompressor.v3 import (
    Decompressor,
    DecompressorCommonDirectionConfig,
    DecompressorRequestDirectionConfig,
    DecompressorResponseDirectionConfig,
)
from envoy_data_plane.envoy.extensions.filters.http.header_mutation.v3 import (
    HeaderMutation as HeaderMutationFilter,
)
from envoy_data_plane.envoy.extensions.filters.http.header_mutation.v3 import Mutations
from envoy_data_plane.envoy.extensions.filters.http.upstream_codec.v3 import UpstreamCodec
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpFilter,
)
from envoy_data_plane.google.protobuf import Any as AnyMessage

from extproc import headers

MAX_INFLATE_RATIO = 1032
"""The most Envoy's gzip decompressor allows (its default, 100, cuts highly repetitive bodies
short and hands the processor a partial one)."""


def compressor() -> HttpFilter:
    """Gzip toward clients that accept it (JSON answers and errors; event streams pass
    uncompressed, as Envoy's default content types leave them out)."""
    library = TypedExtensionConfig(
        name="envoy.compression.gzip.compressor", typed_config=AnyMessage.pack(GzipCompressor())
    )
    config = Compressor(compressor_library=library)
    return HttpFilter(name="envoy.filters.http.compressor", typed_config=AnyMessage.pack(config))


def request_decompressor() -> HttpFilter:
    """Inflates gzip request bodies (the limit on the body applies to the inflated size);
    responses pass untouched."""
    config = Decompressor(
        decompressor_library=TypedExtensionConfig(
            name="envoy.compression.gzip.decompressor",
            # Deflate cannot inflate past ~1032:1: at that ratio no well-formed body is cut
            # short, and `max_request_body` (Envoy's buffer limit) is what stops a bomb.
            typed_config=AnyMessage.pack(GzipDecompressor(max_inflate_ratio=MAX_INFLATE_RATIO)),
        ),
        request_direction_config=DecompressorRequestDirectionConfig(
            # The processor chooses what the provider may send (identity).
            advertise_accept_encoding=False,
        ),
        response_direction_config=DecompressorResponseDirectionConfig(
            common_config=DecompressorCommonDirectionConfig(
                enabled=RuntimeFeatureFlag(default_value=False, runtime_key="unused")
            )
        ),
    )
    return HttpFilter(name="envoy.filters.http.decompressor", typed_config=AnyMessage.pack(config))


def without_attempt_count() -> list[HttpFilter]:
    """Upstream filters for the providers' own clusters once an alias has fallback: the
    virtual host then numbers every request's attempts (for the attempt spans), and calls
    without fallback take no such internal header to their provider."""
    return [header_remover(headers.ATTEMPT_COUNT), upstream_codec()]


def header_remover(*names: str) -> HttpFilter:
    """A filter taking these request headers off."""
    removals = [MutationRule(remove=name) for name in names]
    mutation = HeaderMutationFilter(mutations=Mutations(request_mutations=removals))
    return HttpFilter(
        name="envoy.filters.http.header_mutation", typed_config=AnyMessage.pack(mutation)
    )


def upstream_codec() -> HttpFilter:
    return HttpFilter(
        name="envoy.filters.http.upstream_codec", typed_config=AnyMessage.pack(UpstreamCodec())
    )
