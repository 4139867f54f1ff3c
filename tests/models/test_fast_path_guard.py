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


@pytest.mark.parametrize("size,patch,stride", [(64, 16, 16), (96, 16, 16), (64, 16, 8)])
def test_patch_embed_as_one_gemm_equals_the_conv(size, patch, stride):
    # The fast path's patchify (a gather + one GEMM when stride = patch size; the conv otherwise) against
    # the Conv2d it replaces, in float64.
    from vim_deploy.models import fast_path
    from vim_deploy.models.vim import PatchEmbed

    torch.manual_seed(size + stride)
    pe = PatchEmbed(size, patch, stride, 3, 48).double()
    torch.nn.init.normal_(pe.proj.bias)
    x = torch.randn(3, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        got = fast_path.patch_embed_forward(pe, x)
        want = pe(x)
    assert got.shape == want.shape == (3, pe.grid_for(size, size)[0] ** 2, 48)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


def test_fused_projections_equal_the_per_direction_ones():
    # The `fused` layout's block-diagonal x_proj / dt_proj against each direction's own, in float64.
    from vim_deploy.models import fast_path

    torch.manual_seed(3)
    mixer = create_model("test_vim").double().layers[0].mixer
    E, R, N = mixer.d_inner, mixer.dt_rank, mixer.d_state
    u_f, u_b = torch.randn(E, 40, dtype=torch.float64), torch.randn(E, 40, dtype=torch.float64)
    wx, wdt = fast_path.fused_projections(mixer)
    xd = wx @ torch.cat([u_f, u_b])
    delta = wdt @ xd[2 * N:2 * N + 2 * R]
    for u, x_proj, dt_proj, b0, d0 in ((u_f, mixer.x_proj, mixer.dt_proj, 0, 0),
                                       (u_b, mixer.x_proj_b, mixer.dt_proj_b, 2 * N + 2 * R, E)):
        want = x_proj.weight @ u
        assert torch.allclose(xd[b0:b0 + 2 * N], want[R:], rtol=1e-12, atol=1e-12)
        assert torch.allclose(delta[d0:d0 + E], dt_proj.weight @ want[:R], rtol=1e-12, atol=1e-12)
    assert fast_path.fused_projections(mixer)[0] is wx  # cached while the weights are unchanged


def test_stacked_needs_one_buffer_not_adjacent_addresses():
    """The fused layout reads [u_f; u_b] as one operand only when both lie in one buffer: two separate
    allocations that happen to lie back to back (as batch 1's conv outputs once did) must not pass (a view over both
    runs past the first one's storage: the batch-1 fp16 failure found on the H200)."""
    import numpy as np

    from vim_deploy.models.fast_path import stacked

    E, L = 4, 6
    both = torch.randn(2, E, L)
    assert stacked(both[0][None], both[1][None])
    assert not stacked(both[1][None], both[0][None])  # backward before forward
    buf = np.random.rand(2 * E * L).astype(np.float32)
    u_f, u_b = torch.from_numpy(buf[:E * L]).view(1, E, L), torch.from_numpy(buf[E * L:]).view(1, E, L)
    assert u_b.data_ptr() == u_f.data_ptr() + E * L * 4  # adjacent addresses ...
    assert not stacked(u_f, u_b)  # ... but two storages
    # channel-major views (B, E, L) inside rows of a (2, E, rs) buffer, as the conv returns them
    cm = torch.randn(2, E, 3 * 8)
    f, b = (cm[i].as_strided((3, E, L), (8, 3 * 8, 1)) for i in (0, 1))
    assert stacked(f, b)


@pytest.mark.parametrize("dtype,size", [(torch.float32, 64), (torch.float16, 64), (torch.bfloat16, 96)])
def test_embed_tokens_equals_the_reference_prologue(dtype, size):
    # The fast path's token prologue (one padded buffer) against the reference path's cat /
    # + pos_embed / F.pad / .to(dtype), element for element: the same fp32 sums, rounded once.
    import torch.nn.functional as F

    from vim_deploy.models import fast_path

    torch.manual_seed(size)
    m = create_model("test_vim", img_size=size).requires_grad_(False)
    m = m.set_precision({torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype])
    torch.nn.init.normal_(m.cls_token)
    torch.nn.init.normal_(m.pos_embed)
    x = torch.randn(3, 3, size, size)
    grid = m.patch_embed.grid_for(size, size)
    pos = m._pos_embed_for(grid)
    with torch.no_grad():
        got = fast_path.embed_tokens(m, x, pos)
        p = fast_path.patch_embed_forward(m.patch_embed, x.to(m.compute_dtype)).float()
        mid = p.shape[1] // 2
        want = torch.cat((p[:, :mid], m.cls_token.float().expand(3, -1, -1), p[:, mid:]), dim=1) + pos.float()
        L = want.shape[1]
        want = F.pad(want, (0, 0, 0, -L % 8)).to(m.compute_dtype)
    assert got.dtype == m.compute_dtype and got.shape == want.shape and got.shape[1] % 8 == 0
    assert torch.equal(got, want)
    assert torch.all(got[:, L:] == 0)
