"""The runner interface every runtime implements.

polygraphy's ``BaseRunner`` (``activate`` / ``infer(feed_dict)`` / ``deactivate``, host-side
``last_inference_time``) is the model; vim-deploy does not subclass it because what ``bench`` measures
needs more than an ``infer`` per timing: a device-resident input bound once (ORT I/O binding, CUDA
tensors for TensorRT and PyTorch), forwards issued back to back without a synchronization between them,
and CUDA-graph replays (the fast path, ORT's CUDA graph, DeiT ``-graph``), timed with CUDA events around
``run()``. Comparison is apart from running, as in polygraphy: runners return logits, and
:mod:`vim_deploy.validate.compare` judges them.
"""

from __future__ import annotations

import numpy as np


class Runner:
    """A model on one runtime. ``infer`` for comparisons; ``bind`` once, then ``run`` for timing."""

    name: str = "?"
    device: str = "cpu"
    #: whether PyTorch's allocator sees this runner's device memory (bench's peak = its peak + extra_device_bytes)
    tracks_memory: bool = True
    #: a line for the bench row (e.g. that a CUDA-graph capture was refused), or None
    note: str | None = None

    def infer(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """(B, 3, H, W) float32 images -> (B, classes) float32 logits, on the host."""
        raise NotImplementedError

    def bind(self, x: np.ndarray) -> None:
        """Fix the input of :meth:`run` (on the runner's device; a graph capture may happen here)."""
        self._bound = x

    def run(self) -> None:
        """One forward on the bound input. On a GPU it may return before the work is done (bench times it
        with CUDA events on the current stream)."""
        self.infer(self._bound)

    def output(self) -> np.ndarray | None:
        """The logits of the last ``run()`` on the host (bench's NaN / inf check), or None where a runner cannot
        say cheaply."""
        return None

    def extra_device_bytes(self) -> int:
        """Device memory held outside PyTorch's allocator (TensorRT's activation memory)."""
        return 0

    def release(self) -> None:
        """Drop what the runner holds (models, sessions, graphs, buffers)."""
        self._bound = None
