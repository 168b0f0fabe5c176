"""Config schemas (Istio's and Ratline's own kinds), YAML loading and validation.

The public surface: `load_text`, `load_directory`, `load_mesh_config`, `analyze`,
`fqdn`, and the envelope and message types. Spec models live in `ratline.api.schemas`.
"""

from ratline.api.analyze import analyze
from ratline.api.envelope import Resource, ResourceKey, Source
from ratline.api.errors import ConfigError, ConfigMessage, Severity
from ratline.api.hosts import fqdn
from ratline.api.loader import LoadResult, load_directory, load_mesh_config, load_text

__all__ = [
    "ConfigError",
    "ConfigMessage",
    "LoadResult",
    "Resource",
    "ResourceKey",
    "Severity",
    "Source",
    "analyze",
    "fqdn",
    "load_directory",
    "load_mesh_config",
    "load_text",
]
