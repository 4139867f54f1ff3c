"""The cuBLAS workspace vim-deploy's command line runs with: none, unless the user chose one.

With PyTorch's default cuBLAS workspace, cuBLAS 13 runs three of the four GEMMs of a fast-path Vim layer
(in_proj, dt_proj, out_proj) as kernels whose scheduler state is zeroed by a memset before each launch.
Inside a CUDA graph every such memset is a node of its own, and the gaps around them, not the memsets
(about 1 us each), cost 1-2% of a batch-128 forward. With no workspace (``CUBLAS_WORKSPACE_CONFIG=:0:0``)
cuBLAS picks the same tile shapes with a scheduler that needs no memset; the GEMMs' kernel times do not
change (2026-12-01, H200, CUDA-graph replay, two rounds in balanced order; ``bench/blas_configs.sh`` of commit
8464551):
vim_small batch 128 13.94 -> 13.70 ms a forward, vim_tiny batch 128 7.19 -> 7.03, vim_tiny batch 8 @ 1248
19.41 -> 19.21, vim_base batch 128 30.10 -> 30.01, vim_tiny batch 1 unchanged. ONNX Runtime's
CUDA provider makes cuBLAS handles of its own, which the variable sizes as well: its vim_tiny graph ran 0.6%
faster at batch 128 without a workspace and the same at batch 1 (onnxruntime-gpu 1.31.1, same run).

PyTorch and cuBLAS read the variable once per process, when the first cuBLAS handle is made, so the
command line sets it before any command runs, and only where the user has not set it. Python callers of
the fast path get the same by setting it before their process's first GEMM on the GPU.
"""

from __future__ import annotations

import os
from typing import MutableMapping

VARIABLE = "CUBLAS_WORKSPACE_CONFIG"
NO_WORKSPACE = ":0:0"


def prefer_no_workspace(environ: MutableMapping[str, str] | None = None) -> str:
    """Set ``CUBLAS_WORKSPACE_CONFIG=:0:0`` unless it is set already; return the value in effect."""
    env = os.environ if environ is None else environ
    return env.setdefault(VARIABLE, NO_WORKSPACE)


def describe(environ: MutableMapping[str, str] | None = None) -> str:
    """The setting as reports print it: the variable's value, or PyTorch's default when it is unset."""
    value = (os.environ if environ is None else environ).get(VARIABLE)
    return "PyTorch default" if value is None else f"{VARIABLE}={value}"
