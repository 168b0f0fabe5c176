"""Istio's host naming: short names to FQDNs, wildcard matching, gateway references.

- `fqdn("reviews", "default")` → `reviews.default.svc.cluster.local`
- a name with a dot (`reviews.other.svc.cluster.local`, `httpbin.org`) or a wildcard
  stays as written, as in Istio: only bare short names are expanded
"""

from __future__ import annotations

DEFAULT_DOMAIN_SUFFIX = "cluster.local"
MESH_GATEWAY = "mesh"
"""The reserved gateway name meaning "every sidecar in the mesh"."""


def fqdn(host: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> str:
    """Resolve a host as Istio does relative to the namespace of the resource naming it."""
    if not host or host.startswith("*") or ".svc." in host:
        return host
    if "." not in host:
        return f"{host}.{namespace}.svc.{domain_suffix}"
    return host


def host_matches(pattern: str, host: str) -> bool:
    """Whether `host` is covered by `pattern` (`*`, `*.example.com` or an exact name).

    A wildcard host is covered by a wildcard pattern whose suffix it ends with
    (`*.example.com` covers `*.api.example.com`); an exact pattern never covers a wildcard.
    """
    pattern = pattern.lower()
    host = host.lower()
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        suffix = pattern[1:]
        if host.startswith("*"):
            return host[1:].endswith(suffix)
        return host.endswith(suffix) and len(host) > len(suffix)
    return not host.startswith("*") and pattern == host


def hosts_overlap(a: str, b: str) -> bool:
    """Whether some host could match both `a` and `b`."""
    return host_matches(a, b) or host_matches(b, a)


def split_namespaced_host(value: str, namespace: str) -> tuple[str, str]:
    """Split a Gateway/Sidecar host `ns/host` into (namespace, host).

    `./host` means the resource's own namespace, `*/host` any namespace (returned as `*`),
    and a bare host any namespace.
    """
    ns, slash, host = value.partition("/")
    if not slash:
        return "*", value
    if ns == ".":
        return namespace, host
    return ns, host


def resolve_gateway(ref: str, namespace: str) -> tuple[str, str]:
    """(namespace, name) of the Gateway a VirtualService's `gateways:` entry names.

    Accepts `name`, `ns/name` and `name.ns.svc.cluster.local`-style FQDNs; the reserved
    `mesh` comes back as ("", "mesh").
    """
    if ref == MESH_GATEWAY:
        return "", MESH_GATEWAY
    if "/" in ref:
        ns, _, name = ref.partition("/")
        return ns, name
    if "." in ref:
        name, _, rest = ref.partition(".")
        return rest.split(".", 1)[0], name
    return namespace, ref
