/*
 * The row layouts the kernels of libvim_kernels.so read and write (the scan core and the fast-path conv):
 * a (batch, rows, tokens) tensor whose rows are rowStride apart and whose batches are batchStride apart,
 * either batch-major (batchStride >= rows * rowStride, e.g. a slice of a bigger tensor) or channel-major
 * ((rows, batch, tokens): batch * batchStride <= rowStride, the PyTorch fast path's layout; a row then
 * owns batchStride elements, not rowStride). One validation rule for both kernels, so that they accept
 * the same tensors.
 */
#pragma once

#include <cstdint>

namespace vim
{

//! A batch stride (0 = packed) that keeps the rows of a (batch, rows) grid apart: batch-major or channel-major.
inline bool batchStrideValid(int64_t batchStride, int64_t rows, int64_t rowStride, int64_t batch, int64_t seqlen)
{
    return batchStride == 0 || batchStride >= rows * rowStride
        || (batchStride >= seqlen && batchStride * batch <= rowStride);
}

} // namespace vim
