"""The mesh model: one immutable snapshot of services, endpoints and routing config per push."""
