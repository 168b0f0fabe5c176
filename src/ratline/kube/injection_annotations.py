"""The pod annotations injection reads, validated (pure).

- `proxy.istio.io/config`: a ProxyConfig (YAML or JSON) merged over MeshConfig's
  `defaultConfig`, checked with Ratline's ProxyConfig schema: a wrong value refuses the
  pod (the error names the annotation and the field); a valid Istio field Ratline does
  not read is dropped with an admission warning, as `ratline apply` reports it.
- `sidecar.istio.io/proxyCPU`, `proxyMemory`, `proxyCPULimit`, `proxyMemoryLimit`: the
  sidecar's resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from ratline.api.schemas.meshconfig import ProxyConfig

INJECT = "sidecar.istio.io/inject"
STATUS = "sidecar.istio.io/status"
PROXY_CONFIG = "proxy.istio.io/config"
CPU, MEMORY = "sidecar.istio.io/proxyCPU", "sidecar.istio.io/proxyMemory"
CPU_LIMIT, MEMORY_LIMIT = "sidecar.istio.io/proxyCPULimit", "sidecar.istio.io/proxyMemoryLimit"


class InjectionError(ValueError):
    """The pod cannot be injected as asked; the message names the field."""


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def proxy_config(
    mesh_default: Mapping[str, Any], annotations: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """(the pod's ProxyConfig as camelCase JSON, warnings about what is not supported)."""
    merged: dict[str, Any] = dict(mesh_default)
    text = annotations.get(PROXY_CONFIG, "")
    where = f"metadata.annotations[{PROXY_CONFIG}]"
    if text.strip():
        try:
            overrides = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InjectionError(f"{where}: not YAML: {exc}") from None
        if not isinstance(overrides, Mapping):
            raise InjectionError(f"{where}: must be a ProxyConfig object")
        for key, value in overrides.items():
            if key == "proxyMetadata" and isinstance(value, Mapping):
                merged[key] = {**(merged.get(key) or {}), **value}
            else:
                merged[str(key)] = value
    warnings = []
    for _ in range(len(merged) + 1):
        try:
            ProxyConfig.model_validate(merged)
            break
        except ValidationError as exc:
            unknown = [e for e in exc.errors() if e["type"] == "extra_forbidden"]
            if not unknown:
                first = exc.errors()[0]
                raise InjectionError(
                    f"{where}: {_location(first['loc'])}: {first['msg']}"
                ) from None
            for error in unknown:
                top = str(error["loc"][0])
                if merged.pop(top, None) is not None or top not in merged:
                    warnings.append(
                        f"{where}: {_location(error['loc'])} is valid Istio but not "
                        "supported by Ratline (ignored)"
                    )
    return merged, list(dict.fromkeys(warnings))


def proxy_resources(
    annotations: Mapping[str, str], cpu: str, memory: str
) -> dict[str, Any]:
    """The sidecar's `resources` (requests from the annotations or the defaults)."""
    requests = {"cpu": annotations.get(CPU, cpu), "memory": annotations.get(MEMORY, memory)}
    limits = {
        name: annotations[key]
        for name, key in (("cpu", CPU_LIMIT), ("memory", MEMORY_LIMIT))
        if key in annotations
    }
    return {"requests": requests, **({"limits": limits} if limits else {})}
