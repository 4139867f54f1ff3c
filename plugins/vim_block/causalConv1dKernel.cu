/*
 * Depthwise causal conv1d + SiLU, forward and (optionally) backward direction in one pass.
 *
 * A block owns one (batch, channel) row segment of kTokens tokens: it stages the segment plus a
 * (width - 1) halo on each side in shared memory (coalesced reads along the row), then each thread
 * produces kPerThread tokens of each direction (weights in registers). Memory-bound: x is read about
 * once, each output written once.
 */
#include "causalConv1dKernel.h"
#include "scanTypes.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace vim
{
namespace
{

constexpr int kThreads = 128;
constexpr int kPerThread = 4;
constexpr int kTokens = kThreads * kPerThread; // tokens per block
constexpr int kMaxWidth = 8;

__device__ __forceinline__ float silu(float v)
{
    return v / (1.f + __expf(-v));
}

//! kW > 0: the width as a compile-time constant (weights in registers, unrolled taps); 0: p.width.
template <typename T, int kW>
__global__ void __launch_bounds__(kThreads) causalConvSiluKernel(CausalConvParams const p)
{
    __shared__ float xs[kTokens + 2 * (kMaxWidth - 1)];
    constexpr int kWMax = kW > 0 ? kW : kMaxWidth;
    int const width = kW > 0 ? kW : p.width;
    int const d = blockIdx.y;
    int const b = blockIdx.z;
    int const t0 = blockIdx.x * kTokens;
    int const halo = width - 1;
    int const stride = p.rowStride > 0 ? p.rowStride : p.seqlen;
    int64_t const xStride = p.xBatchStride > 0 ? p.xBatchStride : static_cast<int64_t>(p.dim) * stride;
    T const* x = static_cast<T const*>(p.x) + b * xStride + static_cast<int64_t>(d) * stride;
    for (int i = threadIdx.x; i < kTokens + 2 * halo; i += kThreads)
    {
        int const t = t0 - halo + i;
        xs[i] = (t >= 0 && t < p.seqlen) ? toFloat(x[t]) : 0.f;
    }
    bool const bwd = p.weight[1] != nullptr;
    float wf[kWMax], wb[kWMax];
#pragma unroll
    for (int k = 0; k < kWMax; ++k)
    {
        wf[k] = k < width ? p.weight[0][static_cast<int64_t>(d) * width + k] : 0.f;
        wb[k] = (bwd && k < width) ? p.weight[1][static_cast<int64_t>(d) * width + k] : 0.f;
    }
    float const bf = p.bias[0] ? p.bias[0][d] : 0.f;
    float const bb = (bwd && p.bias[1]) ? p.bias[1][d] : 0.f;
    __syncthreads();
    int64_t const rowOut = (static_cast<int64_t>(b) * p.dim + d) * stride;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j)
    {
        int const i = threadIdx.x + j * kThreads;
        int const t = t0 + i;
        if (t >= stride)
            break;
        float yf = 0.f, yb = 0.f;
        if (t < p.seqlen)
        {
            int const c = i + halo; // position of token t in xs
            float af = bf, ab = bb;
#pragma unroll
            for (int k = 0; k < kWMax; ++k)
            {
                if (k < width)
                {
                    af = fmaf(wf[k], xs[c - halo + k], af);
                    ab = fmaf(wb[k], xs[c + halo - k], ab);
                }
            }
            yf = silu(af);
            yb = silu(ab);
        }
        static_cast<T*>(p.out[0])[rowOut + t] = fromFloat<T>(yf);
        if (bwd)
            static_cast<T*>(p.out[1])[rowOut + t] = fromFloat<T>(yb);
    }
}

template <typename T>
void launch(CausalConvParams const& p, dim3 grid, cudaStream_t stream)
{
    if (p.width == 4)
        causalConvSiluKernel<T, 4><<<grid, kThreads, 0, stream>>>(p);
    else
        causalConvSiluKernel<T, 0><<<grid, kThreads, 0, stream>>>(p);
}

} // namespace

char const* causalConv1dSiluValidate(CausalConvParams const& p)
{
    if (p.batch < 1 || p.dim < 1 || p.seqlen < 1)
        return "batch, dim and seqlen must be >= 1";
    if (p.batch > 65535 || p.dim > 65535)
        return "batch and dim must be <= 65535";
    if (p.width < 1 || p.width > kMaxWidth)
        return "conv width must be in 1..8";
    if (p.rowStride != 0 && p.rowStride < p.seqlen)
        return "rowStride must be 0 (= seqlen) or >= seqlen";
    if (p.xBatchStride != 0 && p.xBatchStride < static_cast<int64_t>(p.dim) * (p.rowStride > 0 ? p.rowStride : p.seqlen))
        return "x batch stride is smaller than dim * rowStride";
    if (!p.x || !p.weight[0] || !p.out[0])
        return "x, the forward weight and the forward output must not be null";
    if (p.weight[1] && !p.out[1])
        return "a backward weight needs a backward output";
    return nullptr;
}

cudaError_t causalConv1dSilu(CausalConvParams const& p, cudaStream_t stream)
{
    if (causalConv1dSiluValidate(p) != nullptr)
        return cudaErrorInvalidValue;
    int const stride = p.rowStride > 0 ? p.rowStride : p.seqlen;
    dim3 const grid((stride + kTokens - 1) / kTokens, p.dim, p.batch);
    switch (p.dtype)
    {
    case ScanDType::kFLOAT: launch<float>(p, grid, stream); break;
    case ScanDType::kHALF: launch<__half>(p, grid, stream); break;
    case ScanDType::kBF16: launch<__nv_bfloat16>(p, grid, stream); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

} // namespace vim
