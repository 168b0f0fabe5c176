"""The control plane process (istiod's role): config store, registry, push loop, xDS, admin API."""
