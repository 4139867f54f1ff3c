"""The sweep: for each backend x resolution x batch, warm up, time many runs, record peak memory.

Two timings a row, as trtexec reports them: latency, each run alone (CUDA events around it, then a
synchronize: median and percentiles), and throughput, the same number of runs back to back between two
events (what a server streaming batches gets: a run's launch overlaps the previous run's GPU work).
img/s and the same-run speed-ups are the throughput; img/s at the median latency is kept beside it.
CPU timing uses perf_counter. Inputs are random (never zeros). Out-of-memory is recorded as ``OOM``
and the sweep goes on.

With ``rounds`` > 1 the whole sweep runs that many times, every other round in the reverse order, so
that a same-run ratio does not hinge on which backend ran first or right after another (a GPU that has
just run one backend for a minute, a baseline whose Python launch time wanders): img/s is the median
round's, the latency percentiles pool every round's runs.
"""

from __future__ import annotations

import datetime
import gc
import os
import platform
import statistics
from dataclasses import dataclass, field

import numpy as np
import torch

from vim_deploy import __version__, cublas_workspace, log
from vim_deploy.bench.backends import make_backend
from vim_deploy.bench.report import speedups
from vim_deploy.bench.timing import percentile, time_back_to_back, time_runs
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
    rounds: int = 1  # each configuration timed this many times, every other round in the reverse order
    device: str = "auto"
    engine: str | None = None   # tensorrt backend: a plan written by `vim-deploy build`
    plugin: str | None = None   # and the plugin library it needs
    upstream: str | None = None  # official-fp16 backend: a hustvl/Vim checkout (else $VIM_DEPLOY_UPSTREAM)
    ort_ops_library: str | None = None  # onnxruntime-* backends: libvim_ort_ops.so (else $VIM_DEPLOY_ORT_OPS_LIB, build/)


def _measure(be, res: int, batch: int, cfg: BenchConfig, cuda: bool) -> dict:
    """One round of one configuration: a runner for it, a bound random input (never zeros), warm-up, timing
    (alone, then back to back), release. Returns its status and raw timings; an out-of-memory is a result,
    any other failure an error."""
    runner = None
    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        runner = be.runner(batch, res)
        runner.bind(np.random.default_rng(0).standard_normal((batch, 3, res, res), dtype=np.float32))
        on_gpu = cuda and runner.device == "cuda"
        times = time_runs(runner.run, cfg.warmup, cfg.iters, on_gpu)
        note = _non_finite_note(runner, f"{be.name} @ {res}px, batch {batch}")
        streamed = time_back_to_back(runner.run, cfg.iters, on_gpu)
        peak = ((torch.cuda.max_memory_allocated() + runner.extra_device_bytes()) / 1e9) \
            if cuda and runner.tracks_memory else None
        out = {"status": "ok", "times": times, "streamed_ms": streamed, "peak_mem_gb": peak}
        notes = [n for n in (runner.note, note) if n]
        if notes:
            out["note"] = "; ".join(notes)
        return out
    except Exception as e:  # noqa: BLE001 - OOM is a result; anything else is reported as an error row
        if _is_oom(e):
            return {"status": "OOM"}
        if isinstance(e, VimDeployError):
            return {"status": "error", "error": e.one_line()}
        return {"status": "error", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
    finally:
        if runner is not None:
            runner.release()
        gc.collect()  # what the configuration held is gone before the next one's peak is measured


def _combine(rounds: list[dict], batch: int) -> dict:
    """A row from a configuration's rounds: the latency percentiles over every timed run of every round,
    img/s the median round's back-to-back throughput (each round's kept in ``img_per_s_rounds`` when there
    are several), the highest peak. A failed round makes the row that failure."""
    bad = next((r for r in rounds if r["status"] != "ok"), None)
    if bad is not None:
        return dict(bad)
    times = [t for r in rounds for t in r["times"]]
    per_round = [batch / (r["streamed_ms"] / 1e3) for r in rounds]
    med = statistics.median(times)
    peaks = [r["peak_mem_gb"] for r in rounds if r["peak_mem_gb"] is not None]
    row = {"status": "ok", "latency_ms_p50": med, "latency_ms_p90": percentile(times, 0.9),
           "latency_ms_p99": percentile(times, 0.99), "img_per_s": statistics.median(per_round),
           "img_per_s_at_p50": batch / (med / 1e3), "peak_mem_gb": max(peaks) if peaks else None}
    if len(rounds) > 1:
        row["img_per_s_rounds"] = per_round
    notes = [r["note"] for r in rounds if r.get("note")]
    if notes:
        row["note"] = notes[-1]
    return row


def _non_finite_note(runner, what: str) -> str | None:
    """A warning line (and the row's note) when the timed forwards' logits hold NaN / inf."""
    out = runner.output()
    if out is None:
        return None
    bad = int((~np.isfinite(out)).sum())
    if not bad:
        return None
    note = f"{bad} of {out.size} logits NaN / inf"
    log.warning(f"{what}: {note}: the timings are of a model that computes garbage.")
    return note


def cpu_name() -> str:
    """'<CPU model> (<n> CPUs)' from /proc/cpuinfo, else the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        model = None
    return f"{model or platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)"


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def run_bench(cfg: BenchConfig, progress=None) -> dict:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    if device == "cuda" and not torch.cuda.is_available():
        raise VimDeployError("--device cuda was asked for, but PyTorch sees no CUDA GPU.")
    if cfg.iters < 1 or cfg.warmup < 0 or cfg.rounds < 1 or not cfg.batches or not cfg.resolutions or not cfg.backends:
        raise VimDeployError("need >= 1 iteration, >= 0 warm-up runs, >= 1 round, and at least one batch, resolution "
                             "and backend.")
    if any(not n.startswith("deit_") for n in cfg.backends):
        from vim_deploy.models import check_resolution

        for res in cfg.resolutions:
            check_resolution(cfg.model, res)
    backends = [make_backend(n, cfg.model, cfg.checkpoint, device, cfg.engine, cfg.plugin, cfg.upstream,
                             cfg.ort_ops_library)
                for n in cfg.backends]  # fail fast on names
    cuda = device == "cuda"
    combos = [(be, r, b) for be in backends for r in cfg.resolutions for b in cfg.batches]
    samples: dict[int, list[dict]] = {i: [] for i in range(len(combos))}
    steps = cfg.rounds * len(combos)
    for k in range(cfg.rounds):
        # every other round in the reverse order, so that no configuration always runs first or after the same one
        order = list(range(len(combos)))[::-1 if k % 2 else 1]
        for step, i in enumerate(order, k * len(combos) + 1):
            be, res, batch = combos[i]
            if samples[i] and samples[i][-1]["status"] != "ok":
                continue  # failed in an earlier round: not tried again
            if progress:
                progress(step, steps, f"{be.name} @ {res}px, batch {batch}"
                         + (f" (round {k + 1}/{cfg.rounds})" if cfg.rounds > 1 else ""))
            samples[i].append(_measure(be, res, batch, cfg, cuda))
    rows = []
    for i, (be, res, batch) in enumerate(combos):
        row = {"backend": be.name, "model": cfg.model if not be.name.startswith("deit") else be.name.split("-")[0],
               "resolution": res, "batch": batch, "device": device}
        row.update(_combine(samples[i], batch))
        rows.append(row)
    dev_name = torch.cuda.get_device_name() if cuda else cpu_name()
    report = {"tool": f"vim-deploy {__version__}", "command": "bench",
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "device": dev_name, "torch": torch.__version__,
              "cublas_workspace": cublas_workspace.describe() if cuda else None,
              "config": cfg.__dict__, "rows": rows}
    report["baseline"], ratios = speedups(report)  # same-run ratios (img/s over the baseline's)
    for i, ratio in ratios.items():
        rows[i]["speedup_vs_baseline"] = ratio
    return report
