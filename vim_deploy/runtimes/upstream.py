"""hustvl/Vim's own model code as a runner: the "official" benchmark baseline and parity checks.

Users run Vim today through upstream's ``vim/models_mamba.py`` with mamba_ssm's compiled
``selective_scan_cuda``, causal-conv1d's ``causal_conv1d_cuda`` and mamba_ssm's Triton RMSNorm
(upstream bundles mamba_ssm 1.1.1 Python code in ``mamba-1p1p1``). This module imports that code from
a checkout (``--upstream DIR`` / ``$VIM_DEPLOY_UPSTREAM``); nothing of it is kept in this repository.

The compiled extensions must be importable (``bench/build_mamba_ssm.py`` builds both from their
registry source archives). causal-conv1d >= 1.5 takes an ``out`` argument that upstream's 1.1.1
code does not pass: an adapter adds it. When causal_conv1d_cuda is absent, a PyTorch stand-in
with the same semantics (fp32 depthwise causal conv + SiLU) is used and :func:`load_models_mamba`
says so, since it is slower than the real kernel.
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

from vim_deploy.errors import VimDeployError
from vim_deploy.runtimes.base import Runner


def _conv_standin():
    def causal_conv1d_fwd(x, weight, bias, *rest):
        silu = bool(rest[-1]) if rest else False
        k = weight.shape[-1]
        y = F.conv1d(F.pad(x.float(), (k - 1, 0)), weight.float().unsqueeze(1),
                     None if bias is None else bias.float(), groups=x.shape[1])
        return (F.silu(y) if silu else y).to(x.dtype)

    return causal_conv1d_fwd


def _conv_adapter(real):
    """Upstream calls causal_conv1d_fwd(x, w, b, seq_idx, initial_states, final_states_out, silu);
    causal-conv1d >= 1.5 wants an `out` tensor before final_states_out and returns nothing."""
    def causal_conv1d_fwd(x, weight, bias, seq_idx, initial_states, final_states_out, silu):
        out = torch.empty_like(x)
        try:
            real.causal_conv1d_fwd(x, weight, bias, seq_idx, initial_states, out, final_states_out, silu)
        except TypeError:  # an older build with the 7-argument form
            return real.causal_conv1d_fwd(x, weight, bias, seq_idx, initial_states, final_states_out, silu)
        return out

    return causal_conv1d_fwd


def _install_shims() -> str:
    """Make upstream's imports resolve; returns how causal conv1d runs ("causal_conv1d_cuda" or stand-in)."""
    impl = "PyTorch stand-in (fp32 depthwise causal conv + SiLU)"
    fwd = _conv_standin()
    try:
        import causal_conv1d_cuda as real  # compiled extension

        fwd = _conv_adapter(real)
        impl = "causal_conv1d_cuda (compiled)"
    except ImportError:
        pass
    mod = types.ModuleType("causal_conv1d_cuda")
    mod.causal_conv1d_fwd = fwd
    sys.modules["causal_conv1d_cuda"] = mod
    cc = types.ModuleType("causal_conv1d")
    cc.causal_conv1d_fn = lambda x, weight, bias=None, activation=None, **_: fwd(
        x, weight, bias, None, None, None, activation in ("silu", "swish"))
    cc.causal_conv1d_update = None
    sys.modules["causal_conv1d"] = cc
    gen = types.ModuleType("mamba_ssm.utils.generation")
    gen.GenerationMixin = object
    sys.modules["mamba_ssm.utils.generation"] = gen
    hf = types.ModuleType("mamba_ssm.utils.hf")
    hf.load_config_hf = hf.load_state_dict_hf = None
    sys.modules["mamba_ssm.utils.hf"] = hf
    return impl


_LOADED: tuple | None = None


def upstream_dir(path: str | None = None) -> str:
    repo = path or os.environ.get("VIM_DEPLOY_UPSTREAM")
    if not repo:
        raise VimDeployError("the official backend needs a hustvl/Vim checkout.",
                             "Pass --upstream DIR or set VIM_DEPLOY_UPSTREAM.")
    if not os.path.isfile(os.path.join(repo, "vim", "models_mamba.py")):
        raise VimDeployError(f"'{repo}' is not a hustvl/Vim checkout (no vim/models_mamba.py).")
    return repo


def load_models_mamba(path: str | None = None):
    """Upstream's ``models_mamba`` module and a description of its causal-conv implementation."""
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    repo = upstream_dir(path)
    try:
        import selective_scan_cuda  # noqa: F401
    except ImportError:
        raise VimDeployError("the official backend needs mamba_ssm's compiled selective_scan_cuda.",
                             "Build it: python bench/build_mamba_ssm.py <mamba_ssm sdist> <dir>, then add <dir> "
                             "to PYTHONPATH.") from None
    impl = _install_shims()
    sys.path.insert(0, os.path.join(repo, "mamba-1p1p1"))
    sys.path.insert(0, os.path.join(repo, "vim"))
    try:
        import models_mamba
    except Exception as e:  # noqa: BLE001  (timm / triton / rope import problems)
        raise VimDeployError(f"could not import upstream models_mamba: {type(e).__name__}: {str(e)[:120]}") from None
    _LOADED = (models_mamba, impl)
    return _LOADED


def official_name(alias: str) -> str:
    """Upstream's registered function name for one of our model names or aliases."""
    from vim_deploy.models.vim import _OFFICIAL

    for official, (al, *_rest) in _OFFICIAL.items():
        if alias in (official, al):
            return official
    raise VimDeployError(f"'{alias}' has no upstream counterpart.",
                         f"Official models: {', '.join(v[0] for v in _OFFICIAL.values())}.")


class OfficialRunner(Runner):
    """hustvl/Vim's models_mamba on mamba_ssm / causal-conv1d kernels under fp16 autocast, eager, as its
    users run it (CUDA only)."""

    name = "official-fp16"

    def __init__(self, model_name: str, res: int, device: str = "cuda", upstream: str | None = None):
        if device != "cuda":
            raise VimDeployError("the official backend needs a CUDA GPU (mamba_ssm's kernels).")
        models_mamba, self.conv_impl = load_models_mamba(upstream)
        self.model = getattr(models_mamba, official_name(model_name))(img_size=res)
        self.model = self.model.to(device).eval().requires_grad_(False)
        self.device = device

    @torch.no_grad()
    def _forward(self, x):
        with torch.autocast("cuda", dtype=torch.float16):
            return self.model(x)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self._forward(torch.from_numpy(x).cuda()).float().cpu().numpy()

    def bind(self, x: np.ndarray) -> None:
        self.x = torch.from_numpy(x).cuda()

    def run(self) -> None:
        self.out = self._forward(self.x)

    def output(self):
        out = getattr(self, "out", None)
        return None if out is None else out.float().cpu().numpy()

    def release(self) -> None:
        self.model = self.x = None
