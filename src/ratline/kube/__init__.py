"""Kubernetes as a source of the mesh: the cluster's objects in, status and admission out.

Behind the same seams the local runtime uses: `KubeConfigStore` is a
`ratline.config.store.ConfigStore` (Services and every kind `ratline.api.kinds` knows,
from the API server's watches), `KubeRegistry` a `ratline.registry.registry.ServiceRegistry`
(Pods, with their Nodes' topology and the EndpointSlices' readiness). Translation, the
model and the xDS server never import this package (import-linter enforces it). The
control plane process composes it (`ratline.controlplane.kubernetes`).

Also here: the CustomResourceDefinitions generated from Ratline's schemas (`crds`), the
validating admission webhook (`admission`, `webhook`), status write-back (`status`),
Lease leader election for the writers (`leader`), and service-account token checks for
certificate requests (`tokens`). The API client is kubernetes_asyncio (`connection`).
"""
