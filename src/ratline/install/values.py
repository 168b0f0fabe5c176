"""The install's values: defaults, overrides as Helm merges them, and their validation.

The defaults are the chart's (`charts/ratline/values.yaml` and each subchart's, which a
test keeps equal to `DEFAULTS`), under one key per part of Istio's split: `base` (CRDs,
the validating webhook), `controlplane` (istiod's role: Deployment, Service, RBAC, the
injection webhook, the MeshConfig ConfigMap) and `gateways` (the ingress gateway).
Overrides merge as Helm's do: maps merge key by key, anything else (lists included)
replaces, and `null` removes a key; `--set a.b=c` parses as Helm's `--set` for the
cases below (dotted keys, `true`/`false`/`null`, integers not starting with 0, `{a,b}` lists).
`meshConfig` is validated as the control plane will read it, so a bad value fails here
with its field, before anything reaches the cluster.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from ratline import __version__
from ratline.api.loader import parse_mesh_config

PARTS = ("base", "controlplane", "gateways")
"""The parts of the install, in the order they are applied (each a subchart)."""

DEFAULTS: dict[str, Any] = {
    "base": {
        "enabled": True,
        "validationURL": "",
    },
    "controlplane": {
        "enabled": True,
        "image": {"repository": "ratline", "tag": __version__, "pullPolicy": "IfNotPresent"},
        "replicaCount": 1,
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        "injectionURL": "",
        "env": {},
        "meshConfig": {
            "trustDomain": "cluster.local",
            "enablePrometheusMerge": True,
        },
    },
    "gateways": {
        "enabled": True,
        "name": "istio-ingressgateway",
        "labels": {"app": "istio-ingressgateway", "istio": "ingressgateway"},
        "replicaCount": 1,
        "service": {
            "type": "LoadBalancer",
            "ports": [
                {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
                {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
            ],
        },
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    },
}


class ValuesError(ValueError):
    """Values that cannot be installed; the message names the file or flag and the key."""


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing: maps merge recursively, other values replace, None deletes."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


_INT = re.compile(r"^-?[0-9]+$")


def _scalar(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if _INT.match(text) and not text.startswith("0"):  # Helm: "0" and "007" stay strings
        return int(text)
    if text.startswith("{") and text.endswith("}"):
        inner = text[1:-1]
        return [_scalar(part) for part in inner.split(",")] if inner else []
    return text


def parse_set(expression: str) -> dict[str, Any]:
    """`controlplane.meshConfig.accessLogFile=/dev/stdout` → the nested mapping."""
    key, equals, raw = expression.partition("=")
    if not equals or not key or any(not part for part in key.split(".")):
        raise ValuesError(f"--set {expression!r}: expected KEY.PATH=VALUE")
    value: Any = _scalar(raw)
    for part in reversed(key.split(".")):
        value = {part: value}
    return dict(value)


def load_values_file(text: str, shown: str) -> dict[str, Any]:
    """A `-f values.yaml` file's mapping (empty file: no overrides)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValuesError(f"{shown}: not YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValuesError(f"{shown}: values must be a mapping, not {type(data).__name__}")
    return data


def _check(values: Mapping[str, Any]) -> None:
    unknown = sorted(set(values) - set(PARTS))
    if unknown:
        raise ValuesError(
            f"unknown values key {', '.join(unknown)} (the parts are {', '.join(PARTS)})"
        )
    for part in PARTS:
        if not isinstance(values.get(part), Mapping):
            raise ValuesError(f"{part}: must be a mapping")
        unknown = sorted(set(values[part]) - set(DEFAULTS[part]))
        if unknown:
            raise ValuesError(f"{part}: unknown key {', '.join(f'{part}.{k}' for k in unknown)}")
    mesh = values["controlplane"].get("meshConfig") or {}
    if not isinstance(mesh, Mapping):
        raise ValuesError("controlplane.meshConfig: must be a mapping")
    _mesh, messages = parse_mesh_config(yaml.safe_dump(dict(mesh)), "controlplane.meshConfig")
    if messages:
        details = "; ".join(
            f"controlplane.meshConfig.{m.field}: {m.message}" if m.field else m.message
            for m in messages
        )
        raise ValuesError(details)
    env = values["controlplane"].get("env") or {}
    if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
        raise ValuesError("controlplane.env: must map variable names to strings")


def resolve(overrides: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The defaults with each override merged in turn (files, then --set), validated."""
    values = DEFAULTS
    for override in overrides:
        values = merge(values, override)
    _check(values)
    return values
