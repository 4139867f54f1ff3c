"""Time the fast path's projection GEMMs in candidate layouts (issue 11: where a Vim forward goes).

The fast path keeps activations as (batch, channels, tokens) so that the conv and scan kernels read
rows of tokens; its GEMMs are then batched over the images (e.g. x_proj is 128 products of
(56 x 768) @ (768 x 200) at vim_small batch 128), and x_proj / dt_proj, tiny in FLOPs, ran at ~45% of
the copy bandwidth in the eleventh session's profile. This script times, per model shape, the GEMMs
as the fast path runs them (``batched``) against the same products with the images folded into the
token dimension, (channels, batch * tokens) (``folded``: one plain GEMM each), and against both
directions' x_proj / dt_proj as one block-diagonal product (``both``). Same run, CUDA events, median
of --iters; results only say which layout to build, the model is not changed here.

    python3 bench/gemm_layouts.py [--shapes small:128:197,base:128:197,tiny:8:6085] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_scan import time_cuda  # noqa: E402

MODELS = {"tiny": (192, 384, 12), "small": (384, 768, 24), "base": (768, 1536, 48)}  # d_model, d_inner, dt_rank
N_STATE = 16


def case(model: str, batch: int, tokens: int, iters: int) -> dict:
    C, E, R = MODELS[model]
    Lp = (tokens + 7) // 8 * 8
    dev, dt = "cuda", torch.float16
    g = torch.Generator(device=dev).manual_seed(0)
    rnd = lambda *s: torch.randn(*s, device=dev, dtype=dt, generator=g)  # noqa: E731
    w_in, w_x, w_dt, w_out = rnd(2 * E, C), rnd(R + 2 * N_STATE, E), rnd(E, R), rnd(C, E)
    w_x2, w_dt2 = rnd(R + 2 * N_STATE, E), rnd(E, R)
    hidden = rnd(batch, Lp, C)
    u = rnd(batch, E, Lp)
    u2 = rnd(batch, E, Lp)
    y = rnd(batch, E, Lp)
    # folded layout: (channels, batch * tokens)
    hidden2d = hidden.reshape(batch * Lp, C)
    u_f = rnd(E, batch * Lp)
    y_f = rnd(E, batch * Lp)
    # both directions: u of both in one (batch, 2E, Lp) buffer, block-diagonal weights with the dt rows first
    u_both = rnd(batch, 2 * E, Lp)
    w_xbd = torch.zeros(2 * (R + 2 * N_STATE), 2 * E, device=dev, dtype=dt)
    w_xbd[:R, :E], w_xbd[R:2 * R, E:] = w_x[:R], w_x2[:R]
    w_xbd[2 * R:2 * R + 2 * N_STATE, :E], w_xbd[2 * R + 2 * N_STATE:, E:] = w_x[R:], w_x2[R:]
    w_dtbd = torch.zeros(2 * E, 2 * R, device=dev, dtype=dt)
    w_dtbd[:E, :R], w_dtbd[E:, R:] = w_dt, w_dt2
    xd = torch.matmul(w_x, u)
    xd_f = w_x @ u_f
    xd_both = torch.matmul(w_xbd, u_both)
    rows = {
        "in_proj batched": lambda: torch.matmul(w_in, hidden.transpose(1, 2)),
        "in_proj folded": lambda: w_in @ hidden2d.t(),
        "x_proj batched (x2 directions)": lambda: (torch.matmul(w_x, u), torch.matmul(w_x2, u2)),
        "x_proj folded (x2)": lambda: (w_x @ u_f, w_x2 @ u_f),
        "x_proj both, block-diagonal": lambda: torch.matmul(w_xbd, u_both),
        "dt_proj batched (x2)": lambda: (torch.matmul(w_dt, xd[:, :R]), torch.matmul(w_dt2, xd[:, :R])),
        "dt_proj folded (x2)": lambda: (w_dt @ xd_f[:R], w_dt2 @ xd_f[:R]),
        "dt_proj both, block-diagonal": lambda: torch.matmul(w_dtbd, xd_both[:, :2 * R]),
        "out_proj batched": lambda: torch.matmul(y.transpose(1, 2), w_out.t()),
        "out_proj folded": lambda: y_f.t() @ w_out.t(),
    }
    moved = {  # bytes a GEMM must read + write at least (operands once)
        "x_proj": 2 * 2 * (batch * E * Lp + batch * (R + 2 * N_STATE) * Lp),
        "dt_proj": 2 * 2 * (batch * R * Lp + batch * E * Lp),
    }
    out = {"model": model, "batch": batch, "tokens": tokens, "padded": Lp, "us": {}}
    for name, fn in rows.items():
        out["us"][name] = round(time_cuda(fn, reps=iters, warmup=3)[0], 2)
    out["min_bytes"] = moved
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="tiny:128:197,small:128:197,base:128:197,tiny:8:6085")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("gemm_layouts: needs a CUDA GPU", file=sys.stderr)
        return 2
    results = []
    for spec in args.shapes.split(","):
        m, b, l = spec.split(":")
        r = case(m, int(b), int(l), args.iters)
        results.append(r)
        print(f"== vim_{m} b{b} @ {l} tokens (padded {r['padded']})")
        for name, us in r["us"].items():
            print(f"  {name:34s} {us:9.2f} us")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gemm_layouts.json").write_text(json.dumps({"device": torch.cuda.get_device_name(),
                                                                 "torch": torch.__version__, "results": results},
                                                                indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
