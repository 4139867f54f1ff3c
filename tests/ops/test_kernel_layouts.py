"""The kernel binding's layout rules (no GPU needed): which tensors the CUDA kernels read in place
(adjacent tokens, one common row stride, batches apart) and which need a contiguous copy."""

import torch

from vim_deploy.ops.kernels import _batch_stride, _layout, row_stride_of


def test_row_stride_of_contiguous_sliced_and_transposed():
    x = torch.zeros(2, 10, 8)
    assert row_stride_of(x) == 8
    assert row_stride_of(x[..., :5]) == 8  # padded rows: tokens 5..7 are padding
    assert row_stride_of(torch.zeros(2, 20, 8)[:, 10:]) == 8  # a channel slice (z of in_proj's output)
    assert row_stride_of(x.transpose(1, 2)) is None  # tokens not adjacent
    assert row_stride_of(torch.zeros(2, 8, 10)[:, ::2]) == 20  # every other row: rows 20 apart, still valid
    assert row_stride_of(torch.zeros(2, 10, 8)[..., ::2]) is None  # every other token: not adjacent
    assert row_stride_of(torch.zeros(4, 10, 8).view(2, 20, 8)[:, :, :8].as_strided((2, 10, 8), (8, 8, 1))) is None
    assert row_stride_of(torch.zeros(1, 1, 5)) == 5


def test_padded_rows_pack_batches():
    t = torch.zeros(2, 4, 16)[..., :8]  # rows 16 elements apart with 8 tokens each
    assert row_stride_of(t) == 16 and _batch_stride(t, 16) == 0


def test_batch_stride_only_when_batches_are_further_apart():
    xz = torch.zeros(3, 20, 16)
    x = xz[:, :10, :13]
    assert row_stride_of(x) == 16 and _batch_stride(x, 16) == 20 * 16
    assert _batch_stride(torch.zeros(3, 10, 16)[..., :13], 16) == 0
    assert _batch_stride(xz[:1, :10], 16) == 0  # one batch: no stride needed


def test_layout_keeps_a_common_row_stride_and_copies_otherwise():
    xz = torch.zeros(3, 20, 16)
    xd = torch.zeros(3, 4, 16)
    ts, rs = _layout([xz[:, :10, :13], xz[:, 10:, :13], None, xd[:, 1:2, :13], xd[:, 2:3, :13]], torch.float32)
    assert rs == 16 and ts[0].data_ptr() == xz.data_ptr() and ts[2] is None  # read in place
    ts, rs = _layout([xz[:, :10, :13], torch.zeros(3, 10, 13)], torch.float32)
    assert rs == 13 and ts[0].is_contiguous() and ts[0].data_ptr() != xz.data_ptr()  # mixed strides: copies
    ts, rs = _layout([torch.zeros(3, 13, 10).transpose(1, 2)], torch.float32)  # tokens not adjacent: copied
    assert rs == 13 and ts[0].is_contiguous()


def test_layout_casts_to_the_call_dtype():
    ts, _ = _layout([torch.zeros(2, 3, 4, dtype=torch.float32)], torch.float16)
    assert ts[0].dtype == torch.float16
