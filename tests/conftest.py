"""Shared fixtures. GPU tests are marked ``gpu`` and skip (with the reason) where CUDA or the
compiled kernel library is missing; bench/run_gpu_checks.sh runs them on a GPU machine."""

from __future__ import annotations

import os

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (on a GPU machine: bash bench/run_gpu_checks.sh)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tmp_out(tmp_path):
    return tmp_path


def listdir_clean(path) -> list[str]:
    """Files in ``path`` (to assert that no partial output was left behind)."""
    return sorted(os.listdir(path))
