"""The sweep: for each backend x resolution x batch, warm up, time many runs, record peak memory.

Two timings a row, as trtexec reports them: latency, each run alone (CUDA events around it, then a
synchronize: median and percentiles), and throughput, the same number of runs back to back between two
events (what a server streaming batches gets: a run's launch overlaps the previous run's GPU work).
img/s and the same-run speed-ups are the throughput; img/s at the median latency is kept beside it.
CPU timing uses perf_counter. Inputs are random (never zeros). Out-of-memory is recorded as ``OOM``
and the sweep goes on.
"""

from __future__ import annotations

import datetime
import gc
import platform
import statistics
import time
from dataclasses import dataclass, field

import torch

from vim_deploy import __version__, cublas_workspace
from vim_deploy.bench.backends import make_backend
from vim_deploy.bench.report import speedups
from vim_deploy.errors import VimDeployError

# The paper lists 738, which no 16-pixel patch grid fits exactly; 736 is the nearest valid size.
PAPER_RESOLUTIONS = (224, 512, 640, 736, 1024, 1248)


@dataclass
class BenchConfig:
    model: str = "vim_tiny"
    checkpoint: str | None = None
    backends: list[str] = field(default_factory=lambda: ["pytorch-fp32"])
    batches: list[int] = field(default_factory=lambda: [1, 8])
    resolutions: list[int] = field(default_factory=lambda: [224])
    warmup: int = 3
    iters: int = 20
    device: str = "auto"
    engine: str | None = None   # tensorrt backend: a plan written by `vim-deploy build`
    plugin: str | None = None   # and the plugin library it needs
    upstream: str | None = None  # official-fp16 backend: a hustvl/Vim checkout (else $VIM_DEPLOY_UPSTREAM)
    ort_ops_library: str | None = None  # ort-plugin-* backends: libvim_ort_ops.so (else $VIM_DEPLOY_ORT_OPS_LIB, build/)


def _percentile(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _time_runs(backend, warmup: int, iters: int, cuda: bool) -> list[float]:
    for _ in range(warmup):
        backend.run()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            backend.run()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            backend.run()
            times.append((time.perf_counter() - t) * 1e3)
    return times


def _time_back_to_back(backend, iters: int, cuda: bool) -> float:
    """Mean ms a run over `iters` runs issued back to back (no synchronize between them)."""
    if cuda:
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters):
            backend.run()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) / iters
    t = time.perf_counter()
    for _ in range(iters):
        backend.run()
    return (time.perf_counter() - t) * 1e3 / iters


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def run_bench(cfg: BenchConfig, progress=None) -> dict:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    if device == "cuda" and not torch.cuda.is_available():
        raise VimDeployError("--device cuda was asked for, but PyTorch sees no CUDA GPU.")
    if cfg.iters < 1 or cfg.warmup < 0 or not cfg.batches or not cfg.resolutions or not cfg.backends:
        raise VimDeployError("need >= 1 iteration, >= 0 warm-up runs, and at least one batch, resolution and backend.")
    if any(not n.startswith("deit_") for n in cfg.backends):
        from vim_deploy.models import check_resolution

        for res in cfg.resolutions:
            check_resolution(cfg.model, res)
    backends = [make_backend(n, cfg.model, cfg.checkpoint, device, cfg.engine, cfg.plugin, cfg.upstream,
                             cfg.ort_ops_library)
                for n in cfg.backends]  # fail fast on names
    cuda = device == "cuda"
    combos = [(be, r, b) for be in backends for r in cfg.resolutions for b in cfg.batches]
    rows = []
    for i, (be, res, batch) in enumerate(combos, 1):
        if progress:
            progress(i, len(combos), f"{be.name} @ {res}px, batch {batch}")
        row = {"backend": be.name, "model": cfg.model if not be.name.startswith("deit") else be.name.split("-")[0],
               "resolution": res, "batch": batch, "device": device}
        try:
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            be.prepare(batch, res)
            on_gpu = cuda and be.device == "cuda"
            times = _time_runs(be, cfg.warmup, cfg.iters, on_gpu)
            streamed = _time_back_to_back(be, cfg.iters, on_gpu)
            med = statistics.median(times)
            row.update(status="ok", latency_ms_p50=med, latency_ms_p90=_percentile(times, 0.9),
                       latency_ms_p99=_percentile(times, 0.99), img_per_s=batch / (streamed / 1e3),
                       img_per_s_at_p50=batch / (med / 1e3),
                       peak_mem_gb=((torch.cuda.max_memory_allocated() + be.extra_device_bytes()) / 1e9)
                       if cuda and be.tracks_memory else None)
            if getattr(be, "note", None):
                row["note"] = be.note
        except Exception as e:  # noqa: BLE001 - OOM is a result; anything else is reported as an error row
            if _is_oom(e):
                row.update(status="OOM")
            elif isinstance(e, VimDeployError):
                row.update(status="error", error=e.one_line())
            else:
                row.update(status="error", error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        finally:
            be.release()
            gc.collect()  # what the combination held is gone before the next one's peak is measured
        rows.append(row)
    dev_name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()
    report = {"tool": f"vim-deploy {__version__}", "command": "bench",
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "device": dev_name, "torch": torch.__version__, "cublas_workspace": cublas_workspace.describe(),
              "config": cfg.__dict__, "rows": rows}
    report["baseline"], ratios = speedups(report)  # same-run ratios (img/s over the baseline's)
    for i, ratio in ratios.items():
        rows[i]["speedup_vs_baseline"] = ratio
    return report
