"""The web dashboard (Kiali's role, done simply): the service graph, golden signals,
config health, proxy sync and traces, served by the control plane under `/ui/`.

`http_api.Dashboard` is what the control plane attaches to its admin API; it reads the
mesh through `sources.MeshSources`, and traffic from Prometheus or from the proxies' own
counters (`reader`). The page is plain JavaScript in `static/` (no build step, no CDN).
"""
