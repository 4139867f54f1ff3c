"""The CUDA fast path is inference-only: with gradients on, it refuses instead of losing them."""

import pytest
import torch

from vim_deploy.errors import VimDeployError
from vim_deploy.models import create_model


def test_fast_path_refuses_to_run_with_gradients():
    m = create_model("test_vim")
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(VimDeployError, match="inference-only"):
        m._check_inference_only(x)  # parameters require grad, grad mode on
    with torch.no_grad():
        m._check_inference_only(x)
    m.requires_grad_(False)
    m._check_inference_only(x)
    with pytest.raises(VimDeployError, match="no_grad"):
        m._check_inference_only(x.requires_grad_())


def test_cpu_forward_ignores_the_fast_path_flag():
    # the kernels are CUDA-only: on the CPU set_fast_path changes nothing (and needs no library)
    m = create_model("test_vim").set_fast_path(True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got = m(x)
        want = m.set_fast_path(False)(x)
    assert torch.equal(got, want)
