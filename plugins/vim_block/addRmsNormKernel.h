/*
 * Fused residual add + RMSNorm of a Vim block (upstream's fused_add_norm with an fp32 residual),
 * TensorRT-free, for the PyTorch fast path:
 *
 *   residual = residual + float(h)          (or float(h) when there is no residual yet)
 *   out      = T(residual * rsqrt(mean(residual^2) + eps) * weight)
 *
 * One warp per row of `cols` channels; rows = batch * tokens.
 */
#pragma once

#include "selectiveScanKernel.h" // ScanDType

namespace vim
{

struct AddRmsNormParams
{
    ScanDType dtype{ScanDType::kHALF}; //!< type of h and out
    int64_t rows{0};
    int32_t cols{0};
    float eps{1e-5f};
    void const* h{nullptr};          //!< (rows, cols) T
    float const* residualIn{nullptr}; //!< (rows, cols) fp32, or null (first block)
    float* residualOut{nullptr};      //!< (rows, cols) fp32, may equal residualIn
    float const* weight{nullptr};     //!< (cols) fp32
    void* out{nullptr};               //!< (rows, cols) T
};

char const* addRmsNormValidate(AddRmsNormParams const& p);

cudaError_t addRmsNorm(AddRmsNormParams const& p, cudaStream_t stream);

} // namespace vim
