"""Translation of a mesh snapshot into Envoy resources, one module per xDS resource type."""
