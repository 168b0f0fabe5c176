"""The agent beside each Envoy: bootstrap, process supervision, health."""
