"""Where the peak GPU memory of a fast-path forward comes from (the figure `vim-deploy bench` reports
as peak_mem_gb): the resident part (weights + the input batch), then the peak reached inside each
stage of one eager forward (patch embedding, each block, the head), then the peak of the bench's own
procedure (warm-up on a side stream + CUDA-graph capture), and the largest live blocks at the peak.

    python bench/profile_memory.py [--model vim_tiny] [--batch 8] [--res 1248] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vim_deploy.bench.backends import TorchVim  # noqa: E402
from vim_deploy.models import create_model  # noqa: E402

MB = 1e6


def stage_peaks(model, x):
    """Peak allocated memory (MB) reached inside each top-level stage of one eager forward."""
    peaks = []

    def pre(name):
        def hook(*_):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            peaks.append([name, torch.cuda.memory_allocated() / MB, None])
        return hook

    def post(*_):
        torch.cuda.synchronize()
        peaks[-1][2] = torch.cuda.max_memory_allocated() / MB

    handles = []
    for name, mod in [("patch_embed", model.patch_embed)] + [(f"layers.{i}", m) for i, m in
                                                            enumerate(model.layers)] + [("norm_f", model.norm_f)]:
        handles.append(mod.register_forward_pre_hook(pre(name)))
        handles.append(mod.register_forward_hook(post))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return [{"stage": n, "allocated_before_mb": round(a, 1), "peak_mb": round(p, 1)} for n, a, p in peaks]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vim_tiny")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--res", type=int, default=1248)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = create_model(args.model, img_size=args.res).set_precision("fp16").cuda().eval().requires_grad_(False)
    model.set_fast_path(True)
    weights = torch.cuda.memory_allocated() / MB
    x = torch.randn(args.batch, 3, args.res, args.res, device="cuda")
    resident = torch.cuda.memory_allocated() / MB
    with torch.no_grad():
        model(x)  # first call: parameter caches, kernel library, cuBLAS workspaces
    torch.cuda.synchronize()
    after_first = torch.cuda.memory_allocated() / MB
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        model(x)
    torch.cuda.synchronize()
    eager_peak = torch.cuda.max_memory_allocated() / MB
    stages = stage_peaks(model, x)
    worst = max(stages, key=lambda s: s["peak_mb"])
    del model, x
    torch.cuda.empty_cache()

    torch.cuda.reset_peak_memory_stats()
    be = TorchVim(args.model, None, "fp16", "cuda", fast=True).runner(args.batch, args.res)
    be.bind(np.random.default_rng(0).standard_normal((args.batch, 3, args.res, args.res), dtype=np.float32))
    be.run()
    torch.cuda.synchronize()
    bench_peak = torch.cuda.max_memory_allocated() / MB
    be.release()

    report = {"model": args.model, "batch": args.batch, "res": args.res, "gpu": torch.cuda.get_device_name(),
              "weights_mb": round(weights, 1), "weights_plus_input_mb": round(resident, 1),
              "allocated_after_first_forward_mb": round(after_first, 1), "eager_peak_mb": round(eager_peak, 1),
              "bench_procedure_peak_mb": round(bench_peak, 1), "worst_stage": worst, "stages": stages}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"memory_{args.model}_b{args.batch}_{args.res}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: v for k, v in report.items() if k != "stages"}))
    for s in stages[:3] + stages[-2:]:
        print(s)


if __name__ == "__main__":
    main()
