/*
 * Depthwise causal conv1d + SiLU, forward and (optionally) backward direction in one pass.
 *
 * Two kernels. The fast path's layout (width 4, rows a multiple of 8 elements apart, 16-byte aligned)
 * takes causalConvSiluVec8Kernel: a thread owns 8 consecutive tokens of a row, read and written as
 * vectors. Anything else takes causalConvSiluKernel: a block owns one (batch, channel) row segment of
 * kTokens tokens, stages it plus a (width - 1) halo on each side in shared memory (coalesced reads along
 * the row), then each thread produces kPerThread tokens of each direction (weights in registers).
 * Memory-bound: x is read about once, each output written once.
 */
#include "causalConv1dKernel.h"
#include "rowLayout.cuh"
#include "scanTypes.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

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

//! Elements between rows of x and of the outputs (0 in the params = seqlen).
__host__ __device__ __forceinline__ int rowStrideOf(CausalConvParams const& p)
{
    return p.rowStride > 0 ? p.rowStride : p.seqlen;
}

//! Elements between batches of x (0 in the params = dim * row stride).
__host__ __device__ __forceinline__ int64_t xBatchStrideOf(CausalConvParams const& p)
{
    return p.xBatchStride > 0 ? p.xBatchStride : static_cast<int64_t>(p.dim) * rowStrideOf(p);
}

//! Elements between batches of the outputs (0 in the params = dim * row stride).
__host__ __device__ __forceinline__ int64_t outBatchStrideOf(CausalConvParams const& p)
{
    return p.outBatchStride > 0 ? p.outBatchStride : static_cast<int64_t>(p.dim) * rowStrideOf(p);
}

//! Outputs (dim, batch, tokens) rather than (batch, dim, tokens) (rowLayout.cuh).
__host__ __device__ __forceinline__ bool channelMajorOf(CausalConvParams const& p)
{
    return outBatchStrideOf(p) < rowStrideOf(p);
}

//! Tokens an output row holds (written up to): the row stride, or in a channel-major layout the batch stride.
__host__ __device__ __forceinline__ int rowLengthOf(CausalConvParams const& p)
{
    return channelMajorOf(p) ? static_cast<int>(outBatchStrideOf(p)) : rowStrideOf(p);
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
    int const stride = rowStrideOf(p);
    T const* x = static_cast<T const*>(p.x) + b * xBatchStrideOf(p) + static_cast<int64_t>(d) * stride;
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
    int64_t const rowOut = b * outBatchStrideOf(p) + static_cast<int64_t>(d) * stride;
    int const rowLength = rowLengthOf(p);
#pragma unroll
    for (int j = 0; j < kPerThread; ++j)
    {
        int const i = threadIdx.x + j * kThreads;
        int const t = t0 + i;
        if (t >= rowLength)
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

/*
 * n / d for 0 <= n < 2^31 as a multiply-high and a shift, d fixed per launch (m = ceil(2^p / d), p = 31 +
 * ceil(log2 d), the quotient (n * m) >> p; checked against integer division on the host for every d < 3000,
 * powers of two and their neighbours, and random d < 2^31). The vectorised kernel's thread index -> (row,
 * token group) -> (batch, channel) took two 64-bit divisions, each a MUFU reciprocal and ~15 instructions on
 * its fast path.
 */
struct FastDiv
{
    uint32_t d{1}, mul{0}, shift{0};

    static FastDiv make(uint32_t divisor)
    {
        FastDiv f;
        f.d = divisor;
        if (divisor > 1)
        {
            int ceilLog2 = 0;
            while ((1ull << ceilLog2) < divisor)
                ++ceilLog2;
            int const p = 31 + ceilLog2;
            f.mul = static_cast<uint32_t>(((1ull << p) + divisor - 1) / divisor);
            f.shift = static_cast<uint32_t>(p - 32);
        }
        return f;
    }

    __device__ __forceinline__ uint32_t div(uint32_t n) const
    {
        return d == 1 ? n : __umulhi(n, mul) >> shift;
    }
};

/*
 * The vectorised form (width 4, rows a multiple of 8 elements apart, 16-byte aligned tensors: the fast
 * path's padded layout). The tensors are a flat run of rows; a thread owns 8 consecutive tokens of one
 * row: one 16-byte load of its own tokens (two for fp32) and two 4-token loads for the halos (the 3
 * tokens before and after, mostly L1 hits of the neighbouring threads' loads), then 16-byte stores
 * (padding tokens, seqlen to the row's length, written as zeros like the row kernel does). Threads walk
 * the output rows in memory order: (batch, channel) when batch-major, (channel, batch) when channel-major.
 * The row-per-block kernel above staged 512 tokens a block whatever the length, so at L = 197 most of
 * its threads idled and it ran at about a quarter of the copy bandwidth (2026-12-01, H200,
 * profile_model.py: 16% of a vim_small batch-128 forward).
 */
constexpr int kVecThreads = 256;
constexpr int kVec = 8;  // tokens a thread
constexpr int kHalo = 4; // tokens loaded on each side (>= width - 1)

//! n consecutive elements (n * sizeof(T) = 8, 16 or 32 bytes, aligned) as fp32.
template <typename T, int kN>
__device__ __forceinline__ void loadVec(T const* src, float* dst)
{
    constexpr int kBytes = kN * static_cast<int>(sizeof(T));
    static_assert(kBytes == 8 || kBytes % 16 == 0, "8-byte or whole 16-byte vectors");
    T v[kN];
    if constexpr (kBytes == 8)
    {
        uint2 const q = *reinterpret_cast<uint2 const*>(src);
        memcpy(v, &q, 8);
    }
    else
    {
#pragma unroll
        for (int i = 0; i < kBytes / 16; ++i)
        {
            uint4 const q = reinterpret_cast<uint4 const*>(src)[i];
            memcpy(reinterpret_cast<char*>(v) + 16 * i, &q, 16);
        }
    }
#pragma unroll
    for (int i = 0; i < kN; ++i)
    {
        dst[i] = toFloat(v[i]);
    }
}

template <typename T>
__device__ __forceinline__ void storeVec8(T* dst, float const* src)
{
    constexpr int kWords = kVec * static_cast<int>(sizeof(T)) / 16;
    T v[kVec];
#pragma unroll
    for (int i = 0; i < kVec; ++i)
    {
        v[i] = fromFloat<T>(src[i]);
    }
#pragma unroll
    for (int i = 0; i < kWords; ++i)
    {
        uint4 q;
        memcpy(&q, reinterpret_cast<char const*>(v) + 16 * i, 16);
        reinterpret_cast<uint4*>(dst)[i] = q;
    }
}

/*
 * perRow divides a thread's group index into (row, group in the row), inner the row into (outer, inner):
 * (batch, channel) when batch-major, (channel, batch) when channel-major. groups < 2^31 (launch()).
 */
template <typename T>
__global__ void __launch_bounds__(kVecThreads) causalConvSiluVec8Kernel(
    CausalConvParams const p, uint32_t groups, FastDiv perRow, FastDiv inner)
{
    constexpr int kW = 4;
    uint32_t const g = blockIdx.x * kVecThreads + threadIdx.x;
    if (g >= groups)
        return;
    int const stride = rowStrideOf(p);
    uint32_t const row = perRow.div(g);
    int const t0 = static_cast<int>(g - row * perRow.d) * kVec;
    bool const channelMajor = channelMajorOf(p);
    uint32_t const outer = inner.div(row);
    int const in = static_cast<int>(row - outer * inner.d);
    int const b = channelMajor ? in : static_cast<int>(outer);
    int const d = channelMajor ? static_cast<int>(outer) : in;
    T const* x = static_cast<T const*>(p.x) + b * xBatchStrideOf(p) + static_cast<int64_t>(d) * stride;
    int64_t const rowOut = b * outBatchStrideOf(p) + static_cast<int64_t>(d) * stride;
    bool const bwd = p.weight[1] != nullptr;
    // v[kHalo + i] = x[t0 + i]: tokens t0 - 4 .. t0 + 11, zero outside 0..seqlen-1.
    float v[kVec + 2 * kHalo];
    if (t0 >= p.seqlen)
    {
        float zero[kVec] = {};
        storeVec8(static_cast<T*>(p.out[0]) + rowOut + t0, zero);
        if (bwd)
            storeVec8(static_cast<T*>(p.out[1]) + rowOut + t0, zero);
        return;
    }
    // x is never read at or past seqlen (its rows need not extend to rowStride): the row's last group and
    // halo are read element by element there.
    if (t0 >= kHalo)
        loadVec<T, kHalo>(x + t0 - kHalo, v);
    else
#pragma unroll
        for (int i = 0; i < kHalo; ++i)
            v[i] = 0.f;
    if (t0 + kVec + kHalo <= p.seqlen)
    {
        loadVec<T, kVec>(x + t0, v + kHalo);
        loadVec<T, kHalo>(x + t0 + kVec, v + kHalo + kVec);
    }
    else
    {
#pragma unroll
        for (int i = kHalo; i < kVec + 2 * kHalo; ++i)
        {
            int const t = t0 - kHalo + i;
            v[i] = t < p.seqlen ? toFloat(x[t]) : 0.f;
        }
    }
    float wf[kW], wb[kW];
#pragma unroll
    for (int k = 0; k < kW; ++k)
    {
        wf[k] = p.weight[0][static_cast<int64_t>(d) * kW + k];
        wb[k] = bwd ? p.weight[1][static_cast<int64_t>(d) * kW + k] : 0.f;
    }
    float const bf = p.bias[0] ? p.bias[0][d] : 0.f;
    float const bb = (bwd && p.bias[1]) ? p.bias[1][d] : 0.f;
    float yf[kVec], yb[kVec];
#pragma unroll
    for (int i = 0; i < kVec; ++i)
    {
        float af = bf, ab = bb;
#pragma unroll
        for (int k = 0; k < kW; ++k)
        {
            af = fmaf(wf[k], v[kHalo + i - (kW - 1) + k], af);
            ab = fmaf(wb[k], v[kHalo + i + (kW - 1) - k], ab);
        }
        // Zero past seqlen by a factor, not a select: as a select the compiler put each token's SiLU behind
        // its own branch, serialising the 16 exp / reciprocal chains of a thread (x is 0 there, so af and
        // ab are finite).
        float const keep = t0 + i < p.seqlen ? 1.f : 0.f;
        yf[i] = silu(af) * keep;
        yb[i] = silu(ab) * keep;
    }
    storeVec8(static_cast<T*>(p.out[0]) + rowOut + t0, yf);
    if (bwd)
        storeVec8(static_cast<T*>(p.out[1]) + rowOut + t0, yb);
}

bool aligned16(void const* ptr)
{
    return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0;
}

//! The fast path's layout: width 4, rows a multiple of 8 elements apart, every tensor 16-byte aligned.
bool vectorisable(CausalConvParams const& p)
{
    return p.width == 4 && rowStrideOf(p) % kVec == 0 && xBatchStrideOf(p) % kVec == 0
        && outBatchStrideOf(p) % kVec == 0 && rowLengthOf(p) % kVec == 0
        && static_cast<int64_t>(p.batch) * p.dim * (rowLengthOf(p) / kVec) < (int64_t{1} << 31) && aligned16(p.x)
        && aligned16(p.out[0])
        && (p.weight[1] == nullptr || aligned16(p.out[1]));
}

template <typename T>
void launch(CausalConvParams const& p, cudaStream_t stream)
{
    int const rowLength = rowLengthOf(p);
    if (vectorisable(p))
    {
        uint32_t const groups = static_cast<uint32_t>(static_cast<int64_t>(p.batch) * p.dim * (rowLength / kVec));
        unsigned const blocks = (groups + kVecThreads - 1) / kVecThreads;
        causalConvSiluVec8Kernel<T><<<blocks, kVecThreads, 0, stream>>>(p, groups,
            FastDiv::make(static_cast<uint32_t>(rowLength / kVec)),
            FastDiv::make(static_cast<uint32_t>(channelMajorOf(p) ? p.batch : p.dim)));
        return;
    }
    dim3 const grid((rowLength + kTokens - 1) / kTokens, p.dim, p.batch);
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
    auto strideOk = [&](int64_t s) { return batchStrideValid(s, p.dim, rowStrideOf(p), p.batch, p.seqlen); };
    if (!strideOk(p.xBatchStride))
        return "x batch stride is neither batch-major (>= dim * rowStride) nor channel-major (>= seqlen, batch * "
               "stride <= rowStride)";
    if (!strideOk(p.outBatchStride))
        return "output batch stride is neither batch-major (>= dim * rowStride) nor channel-major (>= seqlen, "
               "batch * stride <= rowStride)";
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
    switch (p.dtype)
    {
    case ScanDType::kFLOAT: launch<float>(p, stream); break;
    case ScanDType::kHALF: launch<__half>(p, stream); break;
    case ScanDType::kBF16: launch<__nv_bfloat16>(p, stream); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

} // namespace vim
