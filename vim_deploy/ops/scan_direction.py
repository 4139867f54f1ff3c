"""One direction of a selective scan: the inputs a scan kernel launch reads, with names.

A Vim block scans twice (forward, and backward as ``reverse=True`` over the same tokens); the model
builds one ``ScanDirection`` per branch and the kernel binding takes one or two of them per launch.
Layout (mamba_ssm's ``selective_scan_fn``): u, delta, z (B, D, L); A (D, N) = -exp(A_log); B, C
(B, N, L); D and delta_bias (D,). It is a tuple, so ``u, delta, *_ = direction`` still works.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch


class ScanDirection(NamedTuple):
    u: torch.Tensor
    delta: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: Optional[torch.Tensor]
    z: Optional[torch.Tensor]
    delta_bias: Optional[torch.Tensor]
    reverse: bool
