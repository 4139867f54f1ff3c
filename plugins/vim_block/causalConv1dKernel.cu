/*
 * Depthwise causal conv1d + SiLU, forward and (optionally) backward direction in one pass.
 *
 * A block owns one (batch, channel) row segment of kTokens tokens: it stages the segment plus a
 * (width - 1) halo on each side in shared memory (coalesced reads along the row), then each thread
 * produces one token of each direction. Memory-bound: x is read about once, each output written once.
 */
#include "causalConv1dKernel.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace vim
{
namespace
{

constexpr int kTokens = 128;
constexpr int kMaxWidth = 8;

__device__ __forceinline__ float load(float const* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(__half const* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float load(__nv_bfloat16 const* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

__device__ __forceinline__ float silu(float v)
{
    return v / (1.f + __expf(-v));
}

template <typename T>
__global__ void __launch_bounds__(kTokens) causalConvSiluKernel(CausalConvParams const p)
{
    __shared__ float xs[kTokens + 2 * (kMaxWidth - 1)];
    int const d = blockIdx.y;
    int const b = blockIdx.z;
    int const t0 = blockIdx.x * kTokens;
    int const halo = p.width - 1;
    int64_t const xStride = p.xBatchStride > 0 ? p.xBatchStride : static_cast<int64_t>(p.dim) * p.seqlen;
    T const* x = static_cast<T const*>(p.x) + b * xStride + static_cast<int64_t>(d) * p.seqlen;
    for (int i = threadIdx.x; i < kTokens + 2 * halo; i += kTokens)
    {
        int const t = t0 - halo + i;
        xs[i] = (t >= 0 && t < p.seqlen) ? load(x, t) : 0.f;
    }
    __syncthreads();
    int const t = t0 + threadIdx.x;
    if (t >= p.seqlen)
        return;
    int64_t const o = (static_cast<int64_t>(b) * p.dim + d) * p.seqlen + t;
    int const c = threadIdx.x + halo; // position of token t in xs
    {
        float const* w = p.weight[0] + static_cast<int64_t>(d) * p.width;
        float acc = p.bias[0] ? p.bias[0][d] : 0.f;
        for (int k = 0; k < p.width; ++k)
            acc = fmaf(w[k], xs[c - halo + k], acc);
        store(static_cast<T*>(p.out[0]), o, silu(acc));
    }
    if (p.weight[1])
    {
        float const* w = p.weight[1] + static_cast<int64_t>(d) * p.width;
        float acc = p.bias[1] ? p.bias[1][d] : 0.f;
        for (int k = 0; k < p.width; ++k)
            acc = fmaf(w[k], xs[c + halo - k], acc);
        store(static_cast<T*>(p.out[1]), o, silu(acc));
    }
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
    if (p.xBatchStride != 0 && p.xBatchStride < static_cast<int64_t>(p.dim) * p.seqlen)
        return "x batch stride is smaller than dim * seqlen";
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
    dim3 const grid((p.seqlen + kTokens - 1) / kTokens, p.dim, p.batch);
    switch (p.dtype)
    {
    case ScanDType::kFLOAT: causalConvSiluKernel<float><<<grid, kTokens, 0, stream>>>(p); break;
    case ScanDType::kHALF: causalConvSiluKernel<__half><<<grid, kTokens, 0, stream>>>(p); break;
    case ScanDType::kBF16: causalConvSiluKernel<__nv_bfloat16><<<grid, kTokens, 0, stream>>>(p); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

} // namespace vim
