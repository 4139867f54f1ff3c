"""Selective-scan benchmark: our CUDA kernel vs mamba_ssm's selective_scan_fwd vs the PyTorch reference.

Vim shapes (fp16 inputs, fp32 state, dstate 16): tiny/small/base (E = 384/768/1536) at 224
(L = 197) and 1248 (L = 6085), batch 1/8/128. For each shape:
  * ours, fused bidirectional: one launch for both directions (what Vim's block needs);
  * ours, two single-direction launches;
  * mamba_ssm fwd x2 (two directions), when its extension is importable (bench/build_mamba_ssm.py);
  * the PyTorch reference scan x2, where it takes less than a few seconds.
Timing: CUDA events, warm-up, median of many runs, inputs rotated over several sets when they fit
in L2; the headline numbers are CUDA-graph replays (device time, for ours and mamba_ssm alike),
eager numbers (with each call's host overhead) are reported beside them. Ceilings measured in the same run: device copy bandwidth and exp() throughput. Roofline
time = max(min bytes / bandwidth, exp count / exp rate); the report says which bound applies.

With --layout fastpath the tensors are laid out as the model's fast path passes them: channel-major,
(rows, batch, tokens padded to a multiple of --pad, 8 as in the model), seen as (batch, rows, L) views
(mamba_ssm still gets contiguous copies). Default: contiguous (batch, rows, L), as the TensorRT plugin passes them.

Usage: python bench/bench_scan.py [--out DIR] [--quick] [--layout contiguous|fastpath] [--pad N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vim_deploy.ops import kernels  # noqa: E402
from vim_deploy.ops.selective_scan import selective_scan_ref  # noqa: E402

WIDTH = {"tiny": 384, "small": 768, "base": 1536}


def time_cuda(fn, reps=30, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3)  # us
    return statistics.median(times), times


def time_graph(fn_for_set, sets, reps=30):
    """Device time of fn via CUDA-graph replay (no Python/launch overhead), rotating input sets."""
    graphs = []
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for i in range(sets):  # warm-up outside capture (allocations, lazy init)
            fn_for_set(i)
    torch.cuda.synchronize()
    for i in range(sets):
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn_for_set(i)
        graphs.append(g)
    k = [0]

    def replay():
        graphs[k[0] % sets].replay()
        k[0] += 1

    return time_cuda(replay, reps=reps)


def copy_bandwidth():
    x = torch.empty(2 ** 28, dtype=torch.float32, device="cuda").uniform_()
    y = torch.empty_like(x)
    t, _ = time_cuda(lambda: y.copy_(x), reps=20)
    return 2 * x.numel() * 4 / (t * 1e-6)


def exp_throughput():
    import triton
    import triton.language as tl

    @triton.jit
    def chain(x_ptr, o_ptr, n_iter: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + offs)
        for _ in range(n_iter):
            x = tl.exp2(x * -0.5)
        tl.store(o_ptr + offs, x)

    n, iters = 2 ** 24, 256
    x = torch.rand(n, device="cuda")
    o = torch.empty_like(x)
    t, _ = time_cuda(lambda: chain[(n // 1024,)](x, o, iters, BLOCK=1024), reps=10)
    return n * iters / (t * 1e-6)


def make(b, e, l, n, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, device="cuda")  # noqa: E731
    return (r(b, e, l).to(dtype), (0.5 * r(b, e, l) - 1).to(dtype), -torch.exp(0.5 * r(e, n)),
            r(b, n, l).to(dtype), r(b, n, l).to(dtype), r(e), r(b, e, l).to(dtype), 0.3 * r(e))


def channel_major(t, lp):
    """(b, rows, l) -> the same values as a (b, rows, l) view of a zero-padded (rows, b, lp) buffer."""
    b, rows, l = t.shape
    full = torch.zeros(rows, b, lp, dtype=t.dtype, device=t.device)
    full[..., :l] = t.permute(1, 0, 2)
    return full.permute(1, 0, 2)[..., :l]


def padded_length(l, pad=8):
    return -(-l // pad) * pad


def fastpath_layout(args, lp):
    return tuple(channel_major(t, lp) if t.dim() == 3 else t for t in args)


def mamba_module():
    try:
        import selective_scan_cuda  # noqa: F401

        return selective_scan_cuda
    except ImportError:
        return None


def bench_shape(name, b, l, n=16, dtype=torch.float16, ceilings=None, mamba=None, with_ref=True, reps=30,
                explore=False, choices=None, layout="contiguous", pad=8):
    e = WIDTH[name]
    bytes_per = torch.tensor([], dtype=dtype).element_size()
    per_set = (5 * b * e * l + 4 * b * n * l) * bytes_per
    sets = max(1, min(4, int(64e6 // max(per_set, 1)))) if per_set < 64e6 else 1
    inputs = [(make(b, e, l, n, dtype, 2 * i), make(b, e, l, n, dtype, 2 * i + 1)) for i in range(sets)]
    out = torch.empty(b, e, l, dtype=dtype, device="cuda")
    theirs_inputs = inputs  # mamba_ssm's and the reference's: contiguous
    if layout == "fastpath":
        lp = padded_length(l, pad)
        inputs = [(fastpath_layout(f, lp), fastpath_layout(r, lp)) for f, r in inputs]
        out = channel_major(out, lp)
    k = [0]

    def nxt_i():
        k[0] = (k[0] + 1) % sets
        return k[0]

    def ours_fused(i):
        f, r = inputs[i]
        kernels.selective_scan_multi([(*f, False), (*r, True)], True, 0.5, out=out)

    def ours_two(i):
        f, r = inputs[i]
        kernels.selective_scan_multi([(*f, False)], True, 1.0)
        kernels.selective_scan_multi([(*r, True)], True, 1.0)

    row = {"model": name, "E": e, "batch": b, "L": l, "N": n, "dtype": str(dtype).replace("torch.", ""), "layout": layout}
    row["ours_fused_us"], _ = time_graph(ours_fused, sets, reps)
    row["ours_2x_single_us"], _ = time_graph(ours_two, sets, reps)
    row["ours_fused_eager_us"], _ = time_cuda(lambda: ours_fused(nxt_i()), reps=reps)
    lib = kernels.load_library()
    row["chunks"] = lib.vim_selective_scan_num_chunks(1, b, e, l, n, 2, 0, 0)
    row["lanes"] = lib.vim_selective_scan_lanes(1, b, e, l, n, 2, 0, 0)
    if explore and not choices:  # other (chunks, lanes) choices, to tune the launcher's heuristics
        choices = ((1, 1), (1, 2), (1, 4), (2, 2), (4, 2), (6, 2), (2, 4), (4, 4), (6, 4), (8, 1), (8, 2), (8, 4),
                   (10, 4), (13, 2), (13, 4), (0, 1), (0, 2), (0, 4), (1, 8), (4, 8))
        if l >= 1024:  # long sequences: how many chunks (each costs a second pass over its tokens)
            choices = tuple((ch, ln) for ln in (1, 2, 4) for ch in (1, 2, 4, 8, 16, 32)) + ((1, 8), (2, 8), (4, 8))
    if choices:
        for ch, ln in choices:
            def cfg_run(i, ch=ch, ln=ln):
                f, r = inputs[i]
                kernels.selective_scan_multi([(*f, False), (*r, True)], True, 0.5, num_chunks=ch, out=out, lanes=ln)
            row[f"ours_fused_c{ch}_l{ln}_us"], _ = time_graph(cfg_run, sets, reps)
    if mamba is not None:
        def mamba_two(i):
            for (u, d, A, B, C, D, z, bias) in theirs_inputs[i]:
                mamba.fwd(u, d, A, B.unsqueeze(1), C.unsqueeze(1), D, z, bias, True)
        row["mamba_ssm_2x_us"], _ = time_graph(mamba_two, sets, reps)
        row["mamba_ssm_2x_eager_us"], _ = time_cuda(lambda: mamba_two(nxt_i()), reps=reps)
        u, d, A, B, C, D, z, bias = theirs_inputs[0][0]
        theirs = mamba.fwd(u, d, A, B.unsqueeze(1), C.unsqueeze(1), D, z, bias, True)[-1]
        mine = kernels.selective_scan_cuda(*inputs[0][0], True)  # the same values in our layout
        row["rel_diff_vs_mamba"] = ((mine.float() - theirs.float()).norm() / theirs.float().norm()).item()
        row["speedup_vs_mamba"] = row["mamba_ssm_2x_us"] / row["ours_fused_us"]
    if with_ref and b * e * l <= 8 * 768 * 197:
        def ref_two():
            f, r = theirs_inputs[nxt_i()]
            selective_scan_ref(*f, delta_softplus=True)
            selective_scan_ref(*r, delta_softplus=True, reverse=True)
        row["pytorch_ref_2x_us"], _ = time_cuda(ref_two, reps=3, warmup=1)
        row["speedup_vs_ref"] = row["pytorch_ref_2x_us"] / row["ours_fused_us"]
    exps = 2 * b * e * l * n
    min_bytes = (6 * b * e * l + 4 * b * n * l) * bytes_per  # 2x(u, delta) + z + out, B/C x2
    if ceilings:
        t_bw = min_bytes / ceilings["copy_Bps"] * 1e6
        t_exp = exps / ceilings["exp_per_s"] * 1e6
        row["roofline_us"] = max(t_bw, t_exp)
        row["bound"] = "exp" if t_exp >= t_bw else "bandwidth"
        row["roofline_fraction"] = row["roofline_us"] / row["ours_fused_us"]
        row["achieved_GBps"] = min_bytes / (row["ours_fused_us"] * 1e-6) / 1e9
        row["achieved_exp_per_s"] = exps / (row["ours_fused_us"] * 1e-6)
    inputs.clear()
    torch.cuda.empty_cache()
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--explore", action="store_true", help="also time other (chunks, lanes) launch choices")
    ap.add_argument("--choices", default="",
                    help="time exactly these (chunks, lanes) launches besides the launcher's, e.g. 8:2,16:1 (0 chunks: the launcher's count)")
    ap.add_argument("--shapes", default="", help="only these, e.g. small:8:197,tiny:8:6085 (model:batch:L)")
    ap.add_argument("--pad", type=int, default=8,
                    help="--layout fastpath: rows padded to a multiple of this many tokens (the fast path's: 8)")
    ap.add_argument("--layout", choices=("contiguous", "fastpath"), default="contiguous",
                    help="tensor layout handed to our kernel (fastpath: channel-major, tokens padded to --pad)")
    args = ap.parse_args()
    dev = torch.cuda.get_device_name()
    ceilings = {"copy_Bps": copy_bandwidth(), "exp_per_s": exp_throughput()}
    print(f"# {dev}: copy {ceilings['copy_Bps'] / 1e9:.0f} GB/s, exp {ceilings['exp_per_s']:.3e}/s", flush=True)
    mamba = mamba_module()
    print(f"# mamba_ssm selective_scan_cuda: {'yes' if mamba else 'not importable'}", flush=True)
    shapes = [(m, b, 197) for m in ("tiny", "small", "base") for b in (1, 8, 128)]
    shapes += [("tiny", 1, 6085), ("tiny", 8, 6085), ("small", 1, 6085), ("small", 8, 6085)]
    if args.quick:
        shapes = [("small", 128, 197), ("small", 1, 197), ("small", 8, 6085), ("tiny", 8, 6085)]
    if args.shapes:
        shapes = [(m, int(b), int(l)) for m, b, l in (t.split(":") for t in args.shapes.split(","))]
    choices = tuple((int(c), int(n)) for c, n in (t.split(":") for t in args.choices.split(","))) if args.choices else None
    rows = []
    for m, b, l in shapes:
        r = bench_shape(m, b, l, ceilings=ceilings, mamba=mamba, explore=args.explore, choices=choices, layout=args.layout,
                        pad=args.pad)
        rows.append(r)
        print(json.dumps(r), flush=True)
    report = {"device": dev, "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "command": "python bench/bench_scan.py" + (" --quick" if args.quick else "")
              + (f" --layout {args.layout}" if args.layout != "contiguous" else "")
              + (f" --pad {args.pad}" if args.pad != 8 else ""),
              "ceilings": ceilings, "rows": rows}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_scan.json"), "w") as f:
        json.dump(report, f, indent=2)
    hdr = "| model | batch | L | chunks/lanes | ours fused (us) | ours 2x single | mamba_ssm 2x | x vs mamba | PyTorch ref 2x | roofline (us, bound) | % roofline |"
    lines = [f"Device: {dev}; copy {ceilings['copy_Bps'] / 1e9:.0f} GB/s; exp {ceilings['exp_per_s']:.3e}/s", "", hdr,
             "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['L']} | {r['chunks']}/{r['lanes']} | {r['ours_fused_us']:.1f} | {r['ours_2x_single_us']:.1f} | "
            f"{r.get('mamba_ssm_2x_us', float('nan')):.1f} | {r.get('speedup_vs_mamba', float('nan')):.2f} | "
            f"{r.get('pytorch_ref_2x_us', float('nan')):.0f} | {r['roofline_us']:.1f} ({r['bound']}) | "
            f"{100 * r['roofline_fraction']:.0f}% |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "bench_scan.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
