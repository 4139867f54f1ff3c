/*
 * Fused residual add + RMSNorm: one warp per row, the row held in registers between the two
 * passes (sum of squares, then scale), so each input is read once and each output written once.
 */
#include "addRmsNormKernel.h"
#include "scanTypes.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace vim
{
namespace
{

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 64; // cols <= 2048

template <typename T, int kPerLane>
__global__ void __launch_bounds__(kWarps * 32) addRmsNormKernel(AddRmsNormParams const p)
{
    int const lane = threadIdx.x % 32;
    int64_t const row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
    if (row >= p.rows)
        return;
    int64_t const base = row * p.cols;
    T const* h = static_cast<T const*>(p.h) + base;
    float v[kPerLane];
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
    {
        int const c = lane + 32 * i;
        float x = 0.f;
        if (c < p.cols)
        {
            x = toFloat(h[c]);
            if (p.residualIn)
                x += p.residualIn[base + c];
        }
        v[i] = x;
        ss = fmaf(x, x, ss);
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2)
        ss += __shfl_xor_sync(0xffffffffu, ss, off);
    float const rstd = rsqrtf(ss / p.cols + p.eps);
    T* out = static_cast<T*>(p.out) + base;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
    {
        int const c = lane + 32 * i;
        if (c < p.cols)
        {
            p.residualOut[base + c] = v[i];
            out[c] = fromFloat<T>(v[i] * rstd * p.weight[c]);
        }
    }
}

template <typename T>
cudaError_t launch(AddRmsNormParams const& p, cudaStream_t stream)
{
    dim3 const grid(static_cast<unsigned>((p.rows + kWarps - 1) / kWarps));
    int const perLane = (p.cols + 31) / 32;
    if (perLane <= 8)
        addRmsNormKernel<T, 8><<<grid, kWarps * 32, 0, stream>>>(p);
    else if (perLane <= 16)
        addRmsNormKernel<T, 16><<<grid, kWarps * 32, 0, stream>>>(p);
    else if (perLane <= 32)
        addRmsNormKernel<T, 32><<<grid, kWarps * 32, 0, stream>>>(p);
    else
        addRmsNormKernel<T, kMaxPerLane><<<grid, kWarps * 32, 0, stream>>>(p);
    return cudaGetLastError();
}

} // namespace

char const* addRmsNormValidate(AddRmsNormParams const& p)
{
    if (p.rows < 1 || p.cols < 1)
        return "rows and cols must be >= 1";
    if (p.cols > 32 * kMaxPerLane)
        return "cols must be <= 2048";
    if ((p.rows + kWarps - 1) / kWarps > 0x7fffffff)
        return "too many rows";
    if (!p.h || !p.residualOut || !p.weight || !p.out)
        return "h, residualOut, weight and out must not be null";
    return nullptr;
}

cudaError_t addRmsNorm(AddRmsNormParams const& p, cudaStream_t stream)
{
    if (addRmsNormValidate(p) != nullptr)
        return cudaErrorInvalidValue;
    switch (p.dtype)
    {
    case ScanDType::kFLOAT: return launch<float>(p, stream);
    case ScanDType::kHALF: return launch<__half>(p, stream);
    case ScanDType::kBF16: return launch<__nv_bfloat16>(p, stream);
    }
    return cudaErrorInvalidValue;
}

} // namespace vim
