"""`vim-deploy bench`: throughput, latency and peak memory over backends, batches and resolutions."""

from vim_deploy.bench.runner import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench"]
