"""Configuration as code: one YAML file, validated, compiled once into a frozen runtime form."""

from extproc.config.loader import ConfigError, load_gateway, parse_gateway
from extproc.config.model import Gateway, ModelRoute, Principal, Provider, Target

__all__ = [
    "ConfigError",
    "Gateway",
    "ModelRoute",
    "Principal",
    "Provider",
    "Target",
    "load_gateway",
    "parse_gateway",
]
