"""Traces, metrics and the access log: `sdk.py` sets the OpenTelemetry SDK up once per
process; `spans.py`, `metrics.py` and `access_log.py` report each request, through
`requests.Telemetry`."""
