"""Where the time of the deployed graph goes on ONNX Runtime's CUDA provider, measured on the GPU.

ORT's own profiler times nodes on the host (launch + first-run algorithm searches), which said "79%
Conv" without saying how long the GPU spends there. Here torch.profiler (CUPTI) records every CUDA
kernel of the process while ORT runs the plugin graph, so each kernel's device time is real. The same
forward of the PyTorch fast path is profiled beside it, and a few graph / provider-option variants are
timed (median of bound runs, each synchronised), so the report says which knob moves what.

    python bench/profile_ort_gpu.py --model vim_tiny --batch 128 --res 224 --out DIR

Writes DIR/ort_profile_<model>_b<batch>_<res>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vim_deploy.bench.backends import TorchVim  # noqa: E402
from vim_deploy.export import ExportConfig, export_onnx  # noqa: E402
from vim_deploy.export.forms import GraphForm  # noqa: E402
from vim_deploy.runtimes.onnxrt import OrtRunner  # noqa: E402

CATEGORIES = [  # first match wins; kernel names of ORT 1.31 / cuDNN 9 / cuBLAS 13 / ours
    ("scan (ours)", r"selectiveScanKernel"),
    ("causal conv (ours)", r"causalConvSilu"),
    ("add+rmsnorm (ours)", r"addRmsNorm"),
    ("conv (cuDNN)", r"conv|cudnn|fprop|dgrad|depthwise|winograd|implicit"),
    ("matmul", r"gemm|cutlass|cublas|xmma|Kernel2|matmul|sm90_"),
    ("transpose", r"[Tt]ranspose"),
    ("normalization / reduce", r"[Rr]educe|[Nn]orm|[Mm]ean"),
    ("elementwise / cast / pad / split", r"[Ee]lementwise|Binary|Unary|Cast|Pad|Split|Slice|Concat|Expand|Where|"
                                         r"Sigmoid|Silu|Swish|Gelu|vectorized|Impl|_kernel"),
]


def category(name: str) -> str:
    for cat, pat in CATEGORIES:
        if re.search(pat, name):
            return cat
    return "other"


def kernel_table(run, reps: int = 3):
    """Per-forward device time by kernel name, from CUPTI, over ``reps`` forwards."""
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            run()
        torch.cuda.synchronize()
    rows = {}
    for ev in prof.key_averages():  # with CUDA activity only, one entry per kernel name
        if ev.self_device_time_total > 0:
            rows[ev.key] = (ev.self_device_time_total / 1e3 / reps, ev.count)  # ms per forward
    kernels = sorted(([t, n / reps, k] for k, (t, n) in rows.items()), reverse=True)
    cats: dict[str, list] = {}
    for t, n, k in kernels:
        c = cats.setdefault(category(k), [0.0, 0.0])
        c[0] += t
        c[1] += n
    return kernels, cats


def timed_ms(run, warmup: int = 3, iters: int = 15) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        run()  # run_with_iobinding returns after ORT synchronised its stream; the fast path syncs below
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vim_tiny")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vim-ort-prof-")
    x = np.random.default_rng(0).standard_normal((args.batch, 3, args.res, args.res), dtype=np.float32)

    def export(name, form):
        path = os.path.join(tmp, f"{name}.onnx")
        export_onnx(ExportConfig(model=args.model, output=path, img_size=args.res, precision="fp16", form=form,
                                 dynamic_batch=False, batch_size=args.batch))
        return path

    # the fused plugin graph with the conv op, + the add-norm op, + token padding (= --form ort-optimized)
    forms = {"convop": GraphForm(fuse_bidirectional=True, conv_impl="op"),
             "convop+normop": GraphForm(fuse_bidirectional=True, conv_impl="op", norm_impl="op"),
             "ort-optimized": GraphForm(fuse_bidirectional=True, conv_impl="op", norm_impl="op", token_padding=8)}
    names = tuple(forms)
    graphs = {g: export(g, f) for g, f in forms.items()}
    profiled = names
    # (label, graph, extra CUDA provider options). vim-deploy's sessions set cudnn_conv1d_pad_to_nc1d=1.
    variants = [(g, g, {}) for g in names]
    report = {"device": torch.cuda.get_device_name(), "model": args.model, "batch": args.batch, "res": args.res,
              "variants": [], "profiles": {}}

    fast = TorchVim(args.model, None, "fp16", "cuda", fast=True).runner(args.batch, args.res)
    fast.bind(x)

    def fast_eager():
        with torch.no_grad():
            fast.model(fast.x)

    report["fastpath_graph_ms"] = timed_ms(fast.run)
    report["fastpath_eager_ms"] = timed_ms(fast_eager)
    report["profiles"]["fastpath-fp16 (eager)"] = kernel_table(fast_eager)
    fast.release()
    torch.cuda.empty_cache()
    print(f"fast path: graph {report['fastpath_graph_ms']:.2f} ms, eager {report['fastpath_eager_ms']:.2f} ms", flush=True)

    for label, g, opts in variants:
        try:
            r = OrtRunner(graphs[g], "cuda", plugin_graph=True, cuda_options=opts)
            r.bind(x)
            ms = timed_ms(r.run)
            rg = OrtRunner(graphs[g], "cuda", plugin_graph=True, cuda_graph=True, cuda_options=opts)
            rg.bind(x)
            gms = timed_ms(rg.run)
            row = {"variant": label, "ms": ms, "cuda_graph_ms": gms, "status": "ok"}
            if label in profiled:
                report["profiles"][f"onnxruntime-fp16, {label}"] = kernel_table(r.run)
            r.release()
            rg.release()
        except Exception as e:  # noqa: BLE001 - a variant ORT refuses is a row, not the end of the run
            row = {"variant": label, "ms": None, "cuda_graph_ms": None, "status": str(e).splitlines()[0][:200]}
        report["variants"].append(row)
        print(row, flush=True)

    lines = [f"# Where the time goes: {args.model}, batch {args.batch} @ {args.res}, fp16, on {report['device']}", "",
             f"Fast path (PyTorch, our kernels): CUDA-graph replay {report['fastpath_graph_ms']:.2f} ms, eager "
             f"{report['fastpath_eager_ms']:.2f} ms per forward.", "",
             "## ORT plugin graph (fused, static batch; graph = conv impl / projection layout), wall time per bound run (median of 15, synchronised)", "",
             "| variant | no CUDA graph (ms) | ORT CUDA graph (ms) | x fast path (graph) | status |", "|---|---|---|---|---|"]
    for v in report["variants"]:
        f = (lambda t: f"{t:.2f}" if t else "—")
        ratio = f"{v['cuda_graph_ms'] / report['fastpath_graph_ms']:.2f}" if v["cuda_graph_ms"] else "—"
        lines.append(f"| {v['variant']} | {f(v['ms'])} | {f(v['cuda_graph_ms'])} | {ratio} | {v['status']} |")
    for name, (kernels, cats) in report["profiles"].items():
        total = sum(t for t, _, _ in kernels)
        lines += ["", f"## {name}: GPU kernel time {total:.2f} ms per forward (CUPTI)", "",
                  "| category | ms / forward | share | kernels / forward |", "|---|---|---|---|"]
        for c, (t, n) in sorted(cats.items(), key=lambda kv: -kv[1][0]):
            lines.append(f"| {c} | {t:.3f} | {100 * t / total:.1f}% | {n:.0f} |")
        lines += ["", "| kernel | ms / forward | launches / forward |", "|---|---|---|"]
        for t, n, k in kernels[:args.top]:
            lines.append(f"| `{k[:100]}` | {t:.3f} | {n:.0f} |")
    stem = os.path.join(args.out, f"ort_profile_{args.model}_b{args.batch}_{args.res}")
    os.makedirs(args.out, exist_ok=True)
    with open(stem + ".json", "w") as fh:
        json.dump(report, fh, indent=1)
    with open(stem + ".md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
