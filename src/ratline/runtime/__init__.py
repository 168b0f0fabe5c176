"""Runtimes that run workloads and their sidecars."""
