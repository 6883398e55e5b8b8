"""An LLM gateway that runs inside Envoy as an external processor (ext_proc)."""

__version__ = "0.1.0"
