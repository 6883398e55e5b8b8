"""Telemetry settings that a user relies on for privacy."""

from __future__ import annotations

from pathlib import Path

from extproc.config import parse_gateway
from extproc.config.loader import compile_tracing
from extproc.config.schema import TracingSpec
from extproc.telemetry.spans import Spans


def test_content_is_not_recorded_unless_enabled() -> None:
    quiet = Spans(None, compile_tracing(TracingSpec()))
    assert quiet.content("my prompt") is None
    recording = Spans(None, compile_tracing(TracingSpec(record_content=True, redact=[r"\d{4}"])))
    assert recording.content("pin 1234, card 5678") == "pin [REDACTED], card [REDACTED]"


def test_access_log_off_works_unquoted_in_yaml() -> None:
    text = """
providers: {p: {kind: openai, base_url: "http://127.0.0.1:1"}}
models: {m: {provider: p, model: u}}
telemetry: {access_log: off}
"""
    gateway = parse_gateway(text, source=Path("t.yaml"), environ={})
    assert gateway.telemetry.access_log == "off"
