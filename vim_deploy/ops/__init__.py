"""Numerical ops of Vim: the selective scan (reference, export node, CUDA fast path)."""

from vim_deploy.ops.selective_scan import selective_scan, selective_scan_ref

__all__ = ["selective_scan", "selective_scan_ref"]
