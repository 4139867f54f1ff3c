"""Outputs of the fused scan on fixed inputs, to compare two kernel libraries bit for bit (issue 11).

A kernel variant that claims the same arithmetic as the shipped one (the warp-specialised kernel does)
must give the same bits; a float64 tolerance would hide a changed operation order. Run once per library
(each process loads one), then compare:
    VIM_DEPLOY_KERNELS_LIB=a.so python bench/scan_lib_outputs.py dump /tmp/a.pt
    VIM_DEPLOY_KERNELS_LIB=b.so python bench/scan_lib_outputs.py dump /tmp/b.pt
    python bench/scan_lib_outputs.py compare /tmp/a.pt /tmp/b.pt      (exit 1 on any difference)
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scan import WIDTH, fastpath_layout, make  # noqa: E402  (bench_scan's inputs, and the fast path's layout)

CASES = [  # (model, batch, L, dtype, channel-major padded length or 0)
    ("tiny", 128, 197, torch.float16, 0), ("small", 128, 197, torch.float16, 0), ("base", 128, 197, torch.float16, 0),
    ("small", 128, 197, torch.float16, 200), ("small", 128, 197, torch.bfloat16, 200), ("small", 64, 197, torch.float32, 0),
    ("tiny", 132, 1000, torch.float16, 1000), ("small", 97, 33, torch.float16, 0),
]


def dump(path):
    from vim_deploy.ops import kernels

    outs = {}
    for m, b, l, dtype, lp in CASES:
        f, r = (make(b, WIDTH[m], l, 16, dtype, seed) for seed in (1, 2))
        if lp:
            f, r = fastpath_layout(f, lp), fastpath_layout(r, lp)
        r = (*r[:6], f[6], r[7])  # Vim's directions share z
        y = kernels.selective_scan_multi([(*f, False), (*r, True)], True, 0.5)
        torch.cuda.synchronize()
        outs[f"{m}_b{b}_l{l}_{str(dtype)[6:]}_lp{lp}"] = y.cpu()
    torch.save(outs, path)


def compare(a, b):
    x, y = torch.load(a), torch.load(b)
    bad = 0
    for k in x:
        same = torch.equal(x[k], y[k])
        diff = (x[k].float() - y[k].float()).abs().max().item()
        print(f"{k}: {'bit-identical' if same else 'DIFFERENT'} (max abs diff {diff:.3g}, finite {torch.isfinite(y[k]).all().item()})")
        bad += not same
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump(sys.argv[2])
    else:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
