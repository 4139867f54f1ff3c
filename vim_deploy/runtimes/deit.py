"""timm's DeiT as the ViT baseline runner: plain (math) or fused (SDPA / flash) attention, fp32 or fp16
autocast, eager or replayed as a CUDA graph (``graph``: kernels compared without launch overhead, as the
fast path is timed)."""

from __future__ import annotations

import numpy as np
import torch

from vim_deploy.errors import VimDeployError
from vim_deploy.runtimes.base import Runner
from vim_deploy.runtimes.torch import capture_cuda_graph

DEIT_SIZES = ("tiny", "small", "base")


def import_timm():
    try:
        import timm
    except Exception as e:  # noqa: BLE001  (timm's torchvision import can fail in odd ways)
        raise VimDeployError(f"DeiT baselines need timm ({type(e).__name__}: {str(e)[:80]}).",
                             "Install the timm extra: pip install 'vim-deploy[timm]' (it needs a torchvision matching "
                             "your torch).") from None
    return timm


class DeiTRunner(Runner):
    def __init__(self, size: str, fused: bool, device: str, fp16: bool, res: int, graph: bool = False):
        timm = import_timm()
        from timm.layers import set_fused_attn

        if graph and device != "cuda":
            raise VimDeployError("the -graph DeiT backends need a CUDA GPU.")
        set_fused_attn(fused)
        self.model = timm.create_model(f"deit_{size}_patch16_224", pretrained=False, img_size=res)
        self.model = self.model.to(device).eval().requires_grad_(False)
        self.device, self.fp16, self.use_graph = device, fp16, graph
        self.name = f"deit_{size}-{'sdpa' if fused else 'math'}" + ("-fp16" if fp16 else "") + ("-graph" if graph else "")
        self.graph = None

    def _forward(self):
        with torch.autocast(self.device, dtype=torch.float16, enabled=self.fp16 and self.device == "cuda"):
            return self.model(self.x)

    @torch.no_grad()
    def infer(self, x: np.ndarray) -> np.ndarray:
        self.x = torch.from_numpy(x).to(self.device)
        return self._forward().float().cpu().numpy()

    def bind(self, x: np.ndarray) -> None:
        self.x = torch.from_numpy(x).to(self.device)
        self.graph = None
        if self.use_graph:
            self.graph, self.out = capture_cuda_graph(self._forward)

    @torch.no_grad()
    def run(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self.out = self._forward()

    def output(self):
        out = getattr(self, "out", None)
        return None if out is None else out.float().cpu().numpy()

    def release(self) -> None:
        self.model = self.x = self.graph = self.out = None
