"""Student search: the SearchNet space, per-block latency tables, proxies, the Pareto front."""
