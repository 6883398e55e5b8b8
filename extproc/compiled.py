"""The modules every call runs through, compiled to C by mypyc when the package is built with
`EXTPROC_COMPILE=1` (`make compile`, the image): they are typed for `mypy --strict`, which is
what mypyc compiles, and the processor's CPU per call falls by about a fifth. Built without it,
the package is the same code in pure Python.

Compiled code checks the declared types of arguments and attributes when it runs: a value of
the wrong type raises TypeError where pure Python would carry on (the whole test suite runs
compiled).

Left out: modules that run once (start-up, configuration, commands); those whose classes
extend a library's (the OTLP exporter), which mypyc compiles with stricter attribute types
than the library keeps; and `config/model.py`, whose dataclasses inherit fields in an order
mypyc refuses.
"""

from __future__ import annotations

import importlib.machinery
import sys
from typing import Any

MODULES = (
    "extproc.transport.frames",
    "extproc.transport.header_blocks",
    "extproc.transport.huffman",
    "extproc.transport.connection",
    "extproc.transport.call",
    "extproc.transport.budget",
    "extproc.envoyapi.wire",
    "extproc.envoyapi.messages",
    "extproc.exchange",
    "extproc.response",
    "extproc.attempt",
    "extproc.first_attempt",
    "extproc.headers",
    "extproc.usage",
    "extproc.server",
    "extproc.pipeline.auth",
    "extproc.pipeline.cooldown",
    "extproc.pipeline.cost",
    "extproc.pipeline.identity",
    "extproc.pipeline.inflate",
    "extproc.pipeline.key_format",
    "extproc.pipeline.mcp",
    "extproc.pipeline.metering",
    "extproc.pipeline.ratelimit_headers",
    "extproc.pipeline.refusals",
    "extproc.pipeline.relay",
    "extproc.pipeline.routing",
    "extproc.pipeline.screening",
    "extproc.pipeline.stored_responses",
    "extproc.pipeline.stream_screen",
    "extproc.pipeline.token_count",
    "extproc.pipeline.upstream",
    "extproc.pipeline.upstream_headers",
    "extproc.quota.configured",
    "extproc.quota.ledger",
    "extproc.quota.limits",
    "extproc.quota.memory_store",
    "extproc.quota.redis_store",
    "extproc.quota.resp",
    "extproc.quota.standing",
    "extproc.quota.store",
    "extproc.quota.windows",
    "extproc.telemetry.tracer",
    "extproc.telemetry.otlp_wire",
    "extproc.telemetry.spans",
    "extproc.telemetry.access_log",
    "extproc.telemetry.requests",
    "extproc.telemetry.reports",
    "extproc.telemetry.record",
    "extproc.endpoints.body",
    "extproc.endpoints.spec",
    "extproc.endpoints.chat_completions",
    "extproc.translators.translation",
    "extproc.translators.openai.request",
    "extproc.translators.openai.answer",
    "extproc.translators.openai.stream",
    "extproc.providers.base",
    "extproc.providers.openai",
    "extproc.guardrails.policy",
    "extproc.sse",
)


def build() -> str:
    """What this process runs: "compiled" when the modules' extensions were found."""
    loader = getattr(sys.modules.get(MODULES[0]), "__loader__", None)  # the transport's
    native = isinstance(loader, importlib.machinery.ExtensionFileLoader)
    return "compiled" if native else "pure Python"


def as_buffer(raw: memoryview) -> Any:
    """Bytes received, as protobuf's parsers take them: upb reads any buffer but its stubs say
    `bytes`, and a compiled `cast` to bytes would check that (a copy would cost)."""
    return raw
