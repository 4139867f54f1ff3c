"""The PyTorch model as a runner: the fp32 reference, the fp16 / bf16 deployment policy, and the CUDA
fast path (our kernels), which a bound input replays as a CUDA graph (one replay a forward, no launch
overhead, as the deployed runtimes' graphs are timed)."""

from __future__ import annotations

import numpy as np
import torch

from vim_deploy.errors import VimDeployError
from vim_deploy.runtimes.base import Runner

_SIDE_STREAM = None


def _side_stream():
    """One side stream for every warm-up before a capture: PyTorch keeps a cuBLAS workspace (tens of MB,
    counted as allocated) per stream used, so a new stream per capture would pile them up over a bench
    sweep and inflate the peak memory of every later row."""
    global _SIDE_STREAM
    if _SIDE_STREAM is None:
        _SIDE_STREAM = torch.cuda.Stream()
    return _SIDE_STREAM


def capture_cuda_graph(forward):
    """Run ``forward`` twice on the side stream (lazy init, autotuning), then capture one call into a CUDA
    graph; returns (graph, its output)."""
    s = _side_stream()
    with torch.cuda.stream(s), torch.no_grad():
        for _ in range(2):
            forward()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        out = forward()
    return graph, out


class TorchRunner(Runner):
    """``model`` at ``precision`` on ``device``; ``fast``: on vim-deploy's CUDA kernels (CUDA only)."""

    def __init__(self, model, precision: str = "fp32", device: str = "cpu", fast: bool = False):
        if fast and device != "cuda":
            raise VimDeployError("the fastpath backend needs a CUDA GPU.")
        self.model = model.set_precision(precision).to(device).eval().requires_grad_(False)
        if fast:
            self.model.set_fast_path(True)
        self.device, self.fast = device, fast
        self.name = ("fastpath-" if fast else "pytorch-") + precision
        self.graph = None

    @torch.no_grad()
    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(x).to(self.device)).float().cpu().numpy()

    def bind(self, x: np.ndarray) -> None:
        self.x = torch.from_numpy(x).to(self.device)
        self.graph = None
        if self.fast:
            self.graph, self.out = capture_cuda_graph(lambda: self.model(self.x))

    @torch.no_grad()
    def run(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self.out = self.model(self.x)

    def output(self):
        out = getattr(self, "out", None)
        return None if out is None else out.float().cpu().numpy()

    def release(self) -> None:
        self.graph = self.model = self.x = self.out = None
