"""Rendering the Envoy bootstrap from the gateway configuration (envoy-data-plane classes)."""
