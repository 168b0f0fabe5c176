"""The service registry: services and the workload instances behind them."""
