"""Spans in OTLP's protobuf wire format, written directly.

The OpenTelemetry SDK's encoder builds a protobuf object for every span, attribute and value
before serialising them: about 95 µs a span of two dozen attributes, in the exporter's thread,
which holds the GIL the event loop needs. Writing the wire format straight from the spans
gives the same message (tests parse both and compare) for a fraction of that. The resource and
the instrumentation scope, the same for every span, are written once.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status

_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
"""OTLP's span flags: whether the parent's remoteness is known, and that it is remote."""
_SMALL = [bytes((n,)) for n in range(128)]


class ExportableSpan(Protocol):
    """What the encoder reads of an ended span: the SDK's ReadableSpan and the processor's
    own spans both read so."""

    @property
    def parent(self) -> SpanContext | None: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> SpanKind: ...
    @property
    def start_time(self) -> int | None: ...
    @property
    def end_time(self) -> int | None: ...
    @property
    def attributes(self) -> Mapping[str, Any] | None: ...
    @property
    def dropped_attributes(self) -> int: ...
    @property
    def status(self) -> Status: ...
    @property
    def resource(self) -> Resource: ...
    @property
    def instrumentation_scope(self) -> InstrumentationScope | None: ...
    def get_span_context(self) -> SpanContext | None: ...


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL[value]
    value &= 0xFFFF_FFFF_FFFF_FFFF  # negative int64s as two's complement, as protobuf does
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, content: bytes) -> bytes:
    """A length-delimited field (a string, bytes or an embedded message) after its tag."""
    size = len(content)
    return tag + (_SMALL[size] if size < 128 else _varint(size)) + content


_KEYS: dict[str, bytes] = {}
"""Attribute keys as KeyValue's first field: the same few dozen on every span."""
_KEY_LIMIT = 4096


def _key(key: str) -> bytes:
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _field(b"\x0a", key.encode())
        if len(_KEYS) < _KEY_LIMIT:
            _KEYS[key] = encoded
    return encoded


def _value(value: Any) -> bytes:  # noqa: PLR0911 - one case per kind of value
    """An AnyValue's content."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + struct.pack("<d", value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _value(item)) for item in value))
    if isinstance(value, Mapping):
        return _field(b"\x32", _attributes(b"\x0a", value))
    return b""  # None: an empty AnyValue


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Repeated KeyValue, each after `tag`."""
    if not attributes:
        return b""
    return b"".join(_pair(tag, key, value) for key, value in attributes.items())


_SPAN_ATTRIBUTE = b"\x4a"
_PAIRS: dict[str, dict[str | int, bytes]] = {}
"""Span attributes whose text or integer value repeats from span to span (operation,
provider, model, team, status…), encoded, by key and value (nested: no tuple to build and
hash per attribute)."""
_VALUES_PER_KEY = 256


def _pair(tag: bytes, key: str, value: Any) -> bytes:
    kind = type(value)
    if tag != _SPAN_ATTRIBUTE or (kind is not str and kind is not int):
        return _field(tag, _key(key) + _field(b"\x12", _value(value)))
    by_value = _PAIRS.get(key)
    if by_value is None:
        by_value = {}
        if len(_PAIRS) < _KEY_LIMIT:
            _PAIRS[key] = by_value
    encoded = by_value.get(value)
    if encoded is None:
        encoded = _field(tag, _key(key) + _field(b"\x12", _value(value)))
        if len(by_value) < _VALUES_PER_KEY:
            by_value[value] = encoded
    return encoded


def _flags(parent: SpanContext | None) -> int:
    return _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)


def _span(span: ExportableSpan) -> bytes:
    context = span.get_span_context()
    assert context is not None, "a span the SDK ended has its context"
    parts = [
        _field(b"\x0a", context.trace_id.to_bytes(16, "big")),
        _field(b"\x12", context.span_id.to_bytes(8, "big")),
    ]
    if context.trace_state:
        state = ",".join(f"{k}={v}" for k, v in context.trace_state.items())
        parts.append(_field(b"\x1a", state.encode()))
    if span.parent is not None:
        parts.append(_field(b"\x22", span.parent.span_id.to_bytes(8, "big")))
    parts.append(_field(b"\x2a", span.name.encode()))
    parts.append(_SPAN_KINDS[span.kind.value])
    parts.append(_TIMES.pack(0x39, span.start_time or 0, 0x41, span.end_time or 0))
    parts.append(_attributes(b"\x4a", span.attributes))
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    status = span.status
    if status is not None:
        description = _field(b"\x12", status.description.encode()) if status.description else b""
        code = status.status_code.value
        parts.append(_field(b"\x7a", description + (b"\x18" + _SMALL[code] if code else b"")))
    parts.append(_FLAGS[_flags(span.parent)])
    return b"".join(parts)


_SPAN_KINDS = [b"\x30" + _SMALL[kind + 1] for kind in range(5)]
"""Field 6, the kind: OTLP counts kinds from 1, the SDK from 0."""
_TIMES = struct.Struct("<BQBQ")
"""Fields 7 and 8, start and end (fixed64 nanoseconds), tags included."""
_FLAGS = {
    flags: b"\x85\x01" + struct.pack("<I", flags)  # field 16, fixed32
    for flags in (_HAS_IS_REMOTE, _HAS_IS_REMOTE | _IS_REMOTE)
}


class SpanEncoder:
    """ExportTraceServiceRequest bytes for a batch of spans, grouped by resource and then by
    scope as the SDK groups them (events and links, which the gateway's spans never have, are
    left out)."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Resource, bytes]] = {}
        """The resources spans are grouped under, by identity, with their encoding (a
        resource's hash encodes its attributes as JSON: too dear to compute per span; every
        resource seen is kept, so that no identity is reused)."""
        self._groups: dict[int, int] = {}
        """Resource identity → the identity its spans are grouped under."""
        self._kept: list[Resource] = []
        self._scopes: dict[InstrumentationScope | None, bytes] = {}

    def encode(self, spans: Sequence[ExportableSpan]) -> bytes:
        groups: dict[int, dict[InstrumentationScope | None, list[bytes]]] = {}
        for span in spans:
            scopes = groups.setdefault(self._group(span.resource), {})
            scopes.setdefault(span.instrumentation_scope, []).append(_field(b"\x12", _span(span)))
        resource_spans = []
        for group, scopes in groups.items():
            scope_spans = b"".join(
                _field(b"\x12", self._scope(scope) + b"".join(encoded))
                for scope, encoded in scopes.items()
            )
            resource_spans.append(_field(b"\x0a", self._resources[group][1] + scope_spans))
        return b"".join(resource_spans)

    def _group(self, resource: Resource) -> int:
        """The identity of the first resource seen that equals this one."""
        group = self._groups.get(id(resource))
        if group is None:
            group = next((k for k, (seen, _) in self._resources.items() if seen == resource), None)
            if group is None:
                encoded = _field(b"\x0a", _attributes(b"\x0a", resource.attributes))
                if resource.schema_url:
                    encoded += _field(b"\x1a", resource.schema_url.encode())
                group = id(resource)
                self._resources[group] = (resource, encoded)
            self._groups[id(resource)] = group
            self._kept.append(resource)
        return group

    def _scope(self, scope: InstrumentationScope | None) -> bytes:
        """ScopeSpans' scope and schema URL."""
        encoded = self._scopes.get(scope)
        if encoded is None:
            encoded = b""
            if scope is not None:
                content = _field(b"\x0a", scope.name.encode())
                if scope.version:
                    content += _field(b"\x12", scope.version.encode())
                content += _attributes(b"\x1a", scope.attributes)
                encoded = _field(b"\x0a", content)
                if scope.schema_url:
                    encoded += _field(b"\x1a", scope.schema_url.encode())
            self._scopes[scope] = encoded
        return encoded
