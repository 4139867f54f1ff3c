"""Check vim_deploy's Vim against hustvl/Vim's own code (its fast path) on a CUDA GPU.

Usage: python tools/official_parity.py <hustvl/Vim checkout> [--out DIR]

Imports upstream's ``vim/models_mamba.py`` and its bundled ``mamba-1p1p1/mamba_ssm`` (Triton
RMSNorm, ``mamba_inner_fn_no_out_proj``) through ``vim_deploy.runtimes.upstream``, with mamba_ssm's
compiled ``selective_scan_cuda`` and, when importable, causal-conv1d's ``causal_conv1d_cuda``
(both built by bench/build_mamba_ssm.py); without the latter a PyTorch stand-in with its exact
semantics is used, and the report says which ran.

For each official variant: build upstream's model, load its state_dict into ours *strictly*
(proves the key/shape compatibility), run both on the same random images, compare logits; fp32
and fp16 autocast (upstream) vs our fp16 policy; and our CUDA fast path.
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cos_min(a, b):
    return F.cosine_similarity(a.double(), b.double()).min().item()


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def main():
    repo = sys.argv[1]
    out_dir = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else "."
    from vim_deploy.runtimes.upstream import load_models_mamba

    models_mamba, conv_impl = load_models_mamba(repo)  # upstream, on mamba_ssm's compiled kernels
    print(f"causal conv1d: {conv_impl}", flush=True)

    from vim_deploy.models import create_model
    from vim_deploy.models.vim import _OFFICIAL

    results = []
    torch.manual_seed(0)
    for official, (alias, _, _) in _OFFICIAL.items():
        up = getattr(models_mamba, official)().cuda().eval()
        ours = create_model(alias)
        missing = set(ours.state_dict()) ^ set(up.state_dict())
        ours.load_state_dict(up.state_dict(), strict=True)
        ours = ours.cuda().eval()
        x = torch.randn(8, 3, 224, 224, device="cuda")
        with torch.no_grad():
            y_up = up(x)
            y_ours = ours(x)
            with torch.autocast("cuda", dtype=torch.float16):
                y_up16 = up(x)
            ours16 = create_model(alias)
            ours16.load_state_dict(up.state_dict())
            ours16 = ours16.set_precision("fp16").cuda().eval()
            y_ours16 = ours16(x)
            y_fast = ours.set_fast_path(True)(x)
            y_fast16 = ours16.set_fast_path(True)(x)
        r = {
            "model": alias, "key_set_difference": sorted(missing), "n_keys": len(up.state_dict()),
            "fp32_rel": rel(y_ours, y_up), "fp32_cos_min": cos_min(y_ours, y_up),
            "fp32_top1_agree": (y_ours.argmax(1) == y_up.argmax(1)).float().mean().item(),
            "fast_fp32_rel": rel(y_fast, y_up), "fast_fp32_cos_min": cos_min(y_fast, y_up),
            "upstream_fp16_vs_upstream_fp32_cos_min": cos_min(y_up16.float(), y_up),
            "ours_fp16_vs_upstream_fp32_cos_min": cos_min(y_ours16, y_up),
            "fast_fp16_vs_upstream_fp32_cos_min": cos_min(y_fast16, y_up),
            "ours_fp16_vs_upstream_fp16_cos_min": cos_min(y_ours16, y_up16.float()),
        }
        results.append(r)
        print(json.dumps(r), flush=True)
        del up, ours, ours16
        torch.cuda.empty_cache()
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "causal_conv1d": conv_impl, "results": results}
    with open(os.path.join(out_dir, "official_parity.json"), "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
