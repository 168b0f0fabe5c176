"""Config schemas (Istio's and Ratline's own kinds), YAML loading and validation."""
