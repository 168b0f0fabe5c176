"""Installing Ratline into a Kubernetes cluster: values, rendering, the chart, applying.

`values` holds the defaults and merges overrides as Helm does; `render` turns values
into every object of the install (Istio's split: base, control plane, gateways), in
Python, so `ratline manifest generate` and `ratline install` need no `helm`;
`chart` writes the files of `charts/ratline` that are generated from Python (CRDs,
RBAC rules, webhook rules); `apply` applies rendered objects to a cluster (server-side
apply) and waits for them. The Helm chart renders the same objects (tests prove it with
the real `helm template`).
"""
