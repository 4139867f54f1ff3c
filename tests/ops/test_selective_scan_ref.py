"""The reference scan against a naive float64 triple loop, and its reverse / NumPy twins."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vim_deploy.ops.selective_scan import selective_scan_ref
from vim_deploy.validate.reference_op import selective_scan_numpy


def naive_scan(u, delta, A, B, C, D, z, delta_bias, softplus=True):
    """Element by element, float64, written from the recurrence (no vectorisation shared)."""
    u, delta, A, B, C, D, z, delta_bias = (t.double() for t in (u, delta, A, B, C, D, z, delta_bias))
    b_, d_, l_ = u.shape
    n_ = A.shape[1]
    out = torch.empty(b_, d_, l_, dtype=torch.float64)
    for b in range(b_):
        for d in range(d_):
            h = [0.0] * n_
            for t in range(l_):
                dt = float(delta[b, d, t] + delta_bias[d])
                if softplus:
                    dt = float(F.softplus(torch.tensor(dt, dtype=torch.float64)))
                acc = 0.0
                for n in range(n_):
                    h[n] = np.exp(dt * float(A[d, n])) * h[n] + dt * float(B[b, n, t]) * float(u[b, d, t])
                    acc += h[n] * float(C[b, n, t])
                zz = float(z[b, d, t])
                out[b, d, t] = (acc + float(D[d]) * float(u[b, d, t])) * zz / (1 + np.exp(-zz))
    return out


def random_inputs(b, d, l, n, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    u, delta, z = r(b, d, l).to(dtype), (0.5 * r(b, d, l)).to(dtype), r(b, d, l).to(dtype)
    A = -torch.exp(0.5 * r(d, n))
    B, C = r(b, n, l).to(dtype), r(b, n, l).to(dtype)
    D, bias = r(d), 0.3 * r(d)
    return u, delta, A, B, C, D, z, bias


@pytest.mark.parametrize("b,d,l,n", [(1, 3, 1, 1), (2, 4, 7, 3), (1, 5, 33, 16)])
def test_ref_matches_naive_float64(b, d, l, n):
    args = random_inputs(b, d, l, n, seed=b * 100 + l)
    ref = selective_scan_ref(*args, delta_softplus=True, compute_dtype=torch.float64)
    naive = naive_scan(*args)
    err = (ref.double() - naive).norm() / naive.norm()
    print(f"rel err {err:.3e}")
    assert err < 1e-6  # ref returns u's dtype (fp32); the math is float64
    ref64 = selective_scan_ref(*(t.double() for t in args), delta_softplus=True, compute_dtype=torch.float64)
    assert torch.allclose(ref64, naive, rtol=1e-12, atol=1e-12)


def test_fp32_state_within_1e5_of_float64():
    args = random_inputs(2, 16, 197, 16, seed=7)
    y32 = selective_scan_ref(*args, delta_softplus=True)
    y64 = selective_scan_ref(*(t.double() for t in args), delta_softplus=True, compute_dtype=torch.float64)
    err = ((y32.double() - y64).norm() / y64.norm()).item()
    print(f"fp32 vs fp64 rel err {err:.3e}")
    assert err < 1e-5


def test_reverse_equals_flip():
    u, delta, A, B, C, D, z, bias = random_inputs(2, 6, 19, 4, seed=3)
    rev = selective_scan_ref(u, delta, A, B, C, D, z, bias, True, reverse=True, compute_dtype=torch.float64)
    f = lambda t: t.flip(-1)  # noqa: E731
    flip = selective_scan_ref(f(u), f(delta), A, f(B), f(C), D, f(z), bias, True, compute_dtype=torch.float64).flip(-1)
    assert torch.allclose(rev, flip, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reverse", [0, 1])
def test_numpy_op_matches_torch_ref(reverse):
    args = random_inputs(2, 8, 23, 16, seed=11 + reverse)
    ref = selective_scan_ref(*args, delta_softplus=True, reverse=bool(reverse), compute_dtype=torch.float64)
    got = selective_scan_numpy(*(t.numpy() for t in args), delta_softplus=1, reverse=reverse)
    assert np.allclose(got, ref.numpy(), rtol=1e-5, atol=1e-6)


def test_no_softplus_and_half_inputs():
    args = random_inputs(1, 4, 9, 2, seed=5, dtype=torch.float16)
    y = selective_scan_ref(*args, delta_softplus=False)
    assert y.dtype == torch.float16
    y64 = selective_scan_ref(*(t.double() for t in args), delta_softplus=False, compute_dtype=torch.float64)
    assert torch.allclose(y.double(), y64, rtol=2e-3, atol=2e-3)
