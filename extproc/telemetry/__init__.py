"""Traces, metrics and the access log; only `setup.py` touches the OpenTelemetry SDK."""
