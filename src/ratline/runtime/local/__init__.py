"""The local runtime: workloads and sidecars as processes on one machine (`ratline up`)."""
