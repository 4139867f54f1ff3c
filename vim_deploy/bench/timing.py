"""Timing of one runner's forwards: each alone (latency), and back to back (throughput), as trtexec does.

GPU runs are timed with CUDA events on the current stream; CPU runs with perf_counter.
"""

from __future__ import annotations

import time

import torch


def percentile(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def time_runs(run, warmup: int, iters: int, cuda: bool) -> list[float]:
    """ms of each of `iters` runs timed alone (CUDA events and a synchronize each on a GPU), after `warmup`."""
    for _ in range(warmup):
        run()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            run()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            run()
            times.append((time.perf_counter() - t) * 1e3)
    return times


def time_back_to_back(run, iters: int, cuda: bool) -> float:
    """Mean ms a run over `iters` runs issued back to back (no synchronize between them)."""
    if cuda:
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters):
            run()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) / iters
    t = time.perf_counter()
    for _ in range(iters):
        run()
    return (time.perf_counter() - t) * 1e3 / iters
