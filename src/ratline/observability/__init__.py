"""Observability: Istio's standard metrics, the control plane's own metrics, and traces.

Pure parts (sans-IO): the Istio metric and label definitions (`istio_metrics`), peer
metadata (`peer_metadata`), turning Envoy's stats into Istio's series (`labels`, `merge`),
the Prometheus text format (`prometheus_text`), metric families with Istio's buckets
(`metrics`), graph edges (`edges`), the span store (`spans`, `otlp`). Thin async adapters:
the agent's per-proxy metrics endpoint (`agent_http`) and the OTLP gRPC receiver
(`otlp_server`). Nothing here knows Istio's config kinds: what to count is decided by the
control plane's translation, which configures Envoy; this package only reads what Envoy
counted.
"""
