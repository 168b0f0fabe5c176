"""Ratline: a service mesh with a Python control plane and real Envoy sidecars.

The package is layered (see docs/architecture.md and the import-linter contracts in
pyproject.toml): api → config/registry → model → translate/xds → controlplane →
runtime → cli.
"""

__version__ = "0.1.0"
