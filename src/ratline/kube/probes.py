"""App probes rewritten through the agent, as Istio's injector does (pure).

With mTLS STRICT and inbound capture, the kubelet's plain-text probe of an app port would
be refused by the sidecar. So each app container's `httpGet` and `tcpSocket` probe is
rewritten to an `httpGet` of the agent's port 15020, path `/app-health/CONTAINER/livez`
(`readyz`, `startupz`), and the original probe goes to the agent in the sidecar's
`ISTIO_KUBE_APP_PROBERS` environment variable (path → `{"httpGet": …}` or
`{"tcpSocket": …}` with named ports resolved, plus `timeoutSeconds`), which the agent
serves by probing the app itself from inside the pod (its own UID is never captured).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ratline.agent.capture import AGENT_METRICS_PORT

PROBE_KINDS = {"livenessProbe": "livez", "readinessProbe": "readyz", "startupProbe": "startupz"}
PROBERS_ENV = "ISTIO_KUBE_APP_PROBERS"


def _port(value: Any, container: Mapping[str, Any]) -> int | None:
    """A probe's port (a number, or a container port's name) as a number."""
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    for port in container.get("ports") or ():
        if port.get("name") == text and port.get("containerPort"):
            return int(port["containerPort"])
    return None


def _original(probe: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any] | None:
    if "httpGet" in probe:
        http = dict(probe["httpGet"])
        port = _port(http.get("port"), container)
        if port is None:
            return None
        http["port"] = port
        http.setdefault("path", "/")
        answer: dict[str, Any] = {"httpGet": http}
    elif "tcpSocket" in probe:
        port = _port(probe["tcpSocket"].get("port"), container)
        if port is None:
            return None
        answer = {"tcpSocket": {"port": port}}
    else:
        return None
    if probe.get("timeoutSeconds"):
        answer["timeoutSeconds"] = int(probe["timeoutSeconds"])
    return answer


def rewrite_probes(
    containers: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(containers with probes through the agent, the agent's prober table)."""
    probers: dict[str, dict[str, Any]] = {}
    rewritten = []
    for container in containers:
        container = copy.deepcopy(container)
        for kind, suffix in PROBE_KINDS.items():
            probe = container.get(kind)
            if not isinstance(probe, Mapping):
                continue
            original = _original(probe, container)
            if original is None:
                continue
            path = f"/app-health/{container.get('name')}/{suffix}"
            probers[path] = original
            new = {k: v for k, v in probe.items() if k not in ("httpGet", "tcpSocket")}
            new["httpGet"] = {"path": path, "port": AGENT_METRICS_PORT, "scheme": "HTTP"}
            container[kind] = new
        rewritten.append(container)
    return rewritten, probers
