"""Pydantic models of every config kind's spec, one module per API group.

- `networking`: VirtualService, DestinationRule, Gateway, ServiceEntry, WorkloadEntry, Sidecar
- `security`: PeerAuthentication, AuthorizationPolicy, RequestAuthentication
- `core`: Kubernetes Service (plus ServiceAccount and Namespace, which have no spec)
- `workload`: Ratline's Workload
- `meshconfig`: MeshConfig (`mesh.yaml`)
- `common`: the base model, durations and bounded numbers they share
"""
