"""A generic xDS server (SotW and delta ADS) that knows nothing of Istio semantics."""
