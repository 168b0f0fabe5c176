"""The `ratline` command line (istioctl's role)."""
