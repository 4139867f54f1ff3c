"""Where the time of a whole Vim forward goes: top CUDA kernels (torch.profiler) of the fast path
(our scan kernel, fp16) and, for reference, the CUDA-graph replay time of the same forward.

    python bench/profile_model.py [--model vim_tiny] [--cases 128x224,8x1248,1x224] [--out DIR] [--sequence N]
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
from vim_deploy.bench.timing import time_back_to_back  # noqa: E402


def replay_ms(runner, reps=20):
    """Mean ms a forward over `reps` graph replays back to back, after 3 warm-up replays."""
    for _ in range(3):
        runner.run()
    return time_back_to_back(runner.run, reps, cuda=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vim_tiny")
    ap.add_argument("--cases", default="128x224,8x1248,1x224")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--top", type=int, default=18)
    ap.add_argument("--sequence", type=int, default=0,
                    help="also print the first N GPU activities of one forward in launch order (which kernel a "
                         "memset precedes, say)")
    args = ap.parse_args()
    report = {"device": torch.cuda.get_device_name(), "model": args.model, "cases": []}
    for case in args.cases.split(","):
        batch, res = (int(v) for v in case.split("x"))
        be = TorchVim(args.model, None, "fp16", "cuda", fast=True).runner(batch, res)
        be.bind(np.random.default_rng(0).standard_normal((batch, 3, res, res), dtype=np.float32))
        graph_ms = replay_ms(be)
        with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                be.model(be.x)
            torch.cuda.synchronize()
        rows = []
        total = 0.0
        for ev in prof.key_averages():
            t = ev.self_device_time_total / 3 / 1e3  # ms per forward
            if t > 0:
                rows.append((t, ev.count // 3, ev.key[:110]))
                total += t
        rows.sort(reverse=True)
        sequence = []
        if args.sequence:
            gpu = [ev for ev in prof.events() if ev.device_type == torch.autograd.DeviceType.CUDA]
            gpu.sort(key=lambda ev: ev.time_range.start)
            sequence = [(ev.time_range.elapsed_us(), ev.name[:110]) for ev in gpu[: args.sequence]]
        print(f"== {args.model} b{batch} @ {res}: graph replay {graph_ms:.3f} ms ({batch / graph_ms * 1e3:.0f} img/s); "
              f"kernel time {total:.3f} ms per forward")
        for t, n, k in rows[: args.top]:
            print(f"  {t:8.3f} ms {100 * t / total:5.1f}%  x{n:<4d} {k}")
        if sequence:
            print(f"  first {len(sequence)} GPU activities of a forward, in order:")
            for us, k in sequence:
                print(f"    {us:9.1f} us  {k}")
        report["cases"].append({"batch": batch, "res": res, "graph_ms": graph_ms, "kernel_ms": total,
                                "top": [{"ms": t, "calls": n, "kernel": k} for t, n, k in rows[: args.top]],
                                "sequence": [{"us": us, "kernel": k} for us, k in sequence]})
        be.release()
        torch.cuda.empty_cache()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "profile_model.json"), "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
