/*
 * Selective scan forward: the CUDA kernels behind selectiveScanKernel.h.
 *
 * Work decomposition. A thread owns kSPT states of one (batch, channel) and walks the tokens of one
 * sequence chunk sequentially with its states in registers; kLPC lanes share a channel when dstate
 * exceeds 16, or when few channels are in flight (their partial <C, h> sums meet through warp
 * shuffles). A block holds kThreads (64) threads,
 * i.e. kThreads / kLPC channels of one batch. Inputs reach the threads through shared-memory tiles of
 * kTile tokens loaded with coalesced reads (each warp reads whole rows), and outputs leave the same
 * way, so global traffic is one read of every input and one write of the output.
 *
 * When batch * dim is too small to fill the GPU (batch 1, or long sequences at small batch), the
 * sequence is cut into chunks: pass A computes, per chunk, the end state from a zero start and the
 * chunk's summed delta (its decay is exp(A * sum delta)); pass B folds the earlier chunks' carries
 * into each chunk's start state and produces the outputs. With one chunk only pass B runs.
 *
 * Fused bidirectional: pass B runs the forward direction over a chunk, writing y_fwd, then the
 * reverse direction over the same tokens, reading y_fwd back (the same block wrote it) and writing
 * (y_fwd + y_bwd) * outScale.
 */
#include "selectiveScanKernel.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>

namespace vim
{
namespace
{

// Block size and token-tile length (overridable at compile time for tuning experiments).
#ifndef VIM_SCAN_THREADS
#define VIM_SCAN_THREADS 64 // small blocks: more independent blocks per SM overlap their tile-load phases
#endif
#ifndef VIM_SCAN_TILE
#define VIM_SCAN_TILE 16
#endif
#ifndef VIM_SCAN_TOKEN_UNROLL
#define VIM_SCAN_TOKEN_UNROLL 4
#endif
#ifndef VIM_SCAN_MIN_BLOCKS
// 6 x 64 threads per SM leaves 168 registers a thread: no spills (8 blocks capped at 128 and spilled,
// 1.5x slower on the H100, bench/RESULTS.md).
#define VIM_SCAN_MIN_BLOCKS (384 / VIM_SCAN_THREADS)
#endif
constexpr int kThreads = VIM_SCAN_THREADS;
constexpr int kTile = VIM_SCAN_TILE;
constexpr int kTokenUnroll = VIM_SCAN_TOKEN_UNROLL;
constexpr float kLog2e = 1.4426950408889634f;

template <typename T>
__device__ __forceinline__ float toFloat(T v);
template <>
__device__ __forceinline__ float toFloat<float>(float v)
{
    return v;
}
template <>
__device__ __forceinline__ float toFloat<__half>(__half v)
{
    return __half2float(v);
}
template <>
__device__ __forceinline__ float toFloat<__nv_bfloat16>(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v)
{
    return v;
}
template <>
__device__ __forceinline__ __half fromFloat<__half>(float v)
{
    return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float softplus(float x)
{
    // log(1 + e^x) with fast intrinsics; log1p's series where e^x is small keeps the relative error low.
    float const e = __expf(x);
    return x > 20.f ? x : (e < 1e-3f ? e * (1.f - 0.5f * e) : __logf(1.f + e));
}

//! Per-launch constants, passed by value.
struct KernelArgs
{
    int batch, dim, seqlen, dstate;
    int numChunks, chunkLen;
    int numDirections;
    bool deltaSoftplus;
    float outScale;
    ScanDirection dir[2];
    void* out;
    float* hEnd;   // [dir][batch][dim][chunk][dstate]
    float* sumDt;  // [dir][batch][dim][chunk]
};

template <typename T, int kSPT, int kLPC>
struct Tiles
{
    static constexpr int kRows = kThreads / kLPC;
    static constexpr int kMaxN = kSPT * kLPC;
    float u[kRows][kTile + 1];
    float dt[kRows][kTile + 1];
    float z[kRows][kTile + 1];
    float prev[kRows][kTile + 1];
    float4 B[kTile][kMaxN / 4]; // token-major: a thread reads its states as 16-byte vectors
    float4 C[kTile][kMaxN / 4];
};

//! Cooperative, coalesced load of a (rows x tile) slab of a (batch, dim, seqlen) tensor: thread
//! `tid` handles column tid % kTile of rows tid / kTile + k * (kThreads / kTile).
template <typename T, int kRows>
__device__ __forceinline__ void loadRows(float (*dst)[kTile + 1], T const* src, int64_t rowBase, int rowsValid,
    int seqlen, int t0, int tValid)
{
    constexpr int kStride = kThreads / kTile;
    int const c = threadIdx.x % kTile;
    int const r0 = threadIdx.x / kTile;
    T const* p = src + (rowBase + r0) * seqlen + t0 + c;
    bool const colOk = c < tValid;
#pragma unroll
    for (int k = 0; k < kRows / kStride; ++k)
    {
        int const r = r0 + k * kStride;
        dst[r][c] = (colOk && r < rowsValid) ? toFloat<T>(p[static_cast<int64_t>(k) * kStride * seqlen]) : 0.f;
    }
}

//! Store of a (rows x tile) slab, the mirror of loadRows.
template <typename T, int kRows>
__device__ __forceinline__ void storeRows(T* dst, float const (*src)[kTile + 1], int64_t rowBase, int rowsValid,
    int seqlen, int t0, int tValid)
{
    constexpr int kStride = kThreads / kTile;
    int const c = threadIdx.x % kTile;
    int const r0 = threadIdx.x / kTile;
    T* p = dst + (rowBase + r0) * seqlen + t0 + c;
    if (c >= tValid)
        return;
#pragma unroll
    for (int k = 0; k < kRows / kStride; ++k)
    {
        int const r = r0 + k * kStride;
        if (r < rowsValid)
        {
            p[static_cast<int64_t>(k) * kStride * seqlen] = fromFloat<T>(src[r][c]);
        }
    }
}

//! Cooperative load of the (dstate x tile) slab of B or C for one batch, stored token-major.
template <typename T, int kMaxN>
__device__ __forceinline__ void loadStates(float4 (*dst)[kMaxN / 4], T const* src, int b, int dstate, int seqlen,
    int t0, int tValid)
{
    float* d = reinterpret_cast<float*>(dst);
    for (int e = threadIdx.x; e < kMaxN * kTile; e += kThreads)
    {
        int const n = e / kTile;
        int const c = e % kTile;
        float v = 0.f;
        if (n < dstate && c < tValid)
        {
            v = toFloat<T>(src[(static_cast<int64_t>(b) * dstate + n) * seqlen + t0 + c]);
        }
        d[c * kMaxN + n] = v;
    }
}

/*
 * kOutputPass == false: pass A (chunk end states + summed delta), one direction per blockIdx.z.
 * kOutputPass == true:  pass B (outputs), every direction of the call, in order.
 */
template <typename T, int kSPT, int kLPC, bool kOutputPass>
__global__ void __launch_bounds__(kThreads, VIM_SCAN_MIN_BLOCKS) selectiveScanKernel(KernelArgs const args)
{
    using Smem = Tiles<T, kSPT, kLPC>;
    constexpr int kRows = Smem::kRows;
    constexpr int kMaxN = Smem::kMaxN;
    __shared__ Smem s;

    int const b = blockIdx.y;
    int const chunk = kOutputPass ? blockIdx.z : blockIdx.z % args.numChunks;
    int const dirFirst = kOutputPass ? 0 : blockIdx.z / args.numChunks;
    int const dirLast = kOutputPass ? args.numDirections : dirFirst + 1;
    int const d0 = blockIdx.x * kRows;
    int const rowsValid = min(kRows, args.dim - d0);
    int const row = threadIdx.x / kLPC;
    int const lane = threadIdx.x % kLPC;
    int const d = d0 + row;
    bool const channelValid = row < rowsValid;
    int const c0 = chunk * args.chunkLen;
    int const c1 = min(args.seqlen, c0 + args.chunkLen);
    int const numTiles = (c1 - c0 + kTile - 1) / kTile;
    int64_t const rowBase = static_cast<int64_t>(b) * args.dim + d0;
    T* out = static_cast<T*>(args.out);

    for (int di = dirFirst; di < dirLast; ++di)
    {
        ScanDirection const P = di == 0 ? args.dir[0] : args.dir[1];
        bool const reverse = P.reverse;
        // Per-thread constants: A pre-scaled by log2(e) so that exp(dt*A) = exp2(dt*A2).
        float A2[kSPT];
#pragma unroll
        for (int i = 0; i < kSPT; ++i)
        {
            int const n = lane * kSPT + i;
            A2[i] = (channelValid && n < args.dstate) ? P.A[static_cast<int64_t>(d) * args.dstate + n] * kLog2e : 0.f;
        }
        float const bias = (channelValid && P.deltaBias) ? P.deltaBias[d] : 0.f;
        float const Dd = (channelValid && P.D) ? P.D[d] : 0.f;

        float h[kSPT];
#pragma unroll
        for (int i = 0; i < kSPT; ++i)
        {
            h[i] = 0.f;
        }
        // Pass B with several chunks: fold in the carries of the chunks scanned before this one.
        if (kOutputPass && args.numChunks > 1 && channelValid)
        {
            int64_t const base = ((static_cast<int64_t>(di) * args.batch + b) * args.dim + d) * args.numChunks;
            int const first = reverse ? args.numChunks - 1 : 0;
            int const step = reverse ? -1 : 1;
            for (int k = first; k != chunk; k += step)
            {
                float const S = args.sumDt[base + k];
                float const* he = args.hEnd + (base + k) * args.dstate;
#pragma unroll
                for (int i = 0; i < kSPT; ++i)
                {
                    int const n = lane * kSPT + i;
                    float const carry = n < args.dstate ? he[n] : 0.f;
                    h[i] = exp2f(A2[i] * S) * h[i] + carry;
                }
            }
        }

        float sumDt = 0.f;
        for (int j = 0; j < numTiles; ++j)
        {
            int const tile = reverse ? numTiles - 1 - j : j;
            int const t0 = c0 + tile * kTile;
            int const tValid = min(kTile, c1 - t0);
            __syncthreads(); // previous tile fully consumed (and stored)
            loadRows<T, kRows>(s.u, static_cast<T const*>(P.u), rowBase, rowsValid, args.seqlen, t0, tValid);
            loadRows<T, kRows>(s.dt, static_cast<T const*>(P.delta), rowBase, rowsValid, args.seqlen, t0, tValid);
            loadStates<T, kMaxN>(s.B, static_cast<T const*>(P.B), b, args.dstate, args.seqlen, t0, tValid);
            if (kOutputPass)
            {
                loadStates<T, kMaxN>(s.C, static_cast<T const*>(P.C), b, args.dstate, args.seqlen, t0, tValid);
                if (P.z)
                {
                    loadRows<T, kRows>(s.z, static_cast<T const*>(P.z), rowBase, rowsValid, args.seqlen, t0, tValid);
                }
                if (di > 0)
                {
                    loadRows<T, kRows>(s.prev, out, rowBase, rowsValid, args.seqlen, t0, tValid);
                }
            }
            __syncthreads();

            // One token step. Full tiles run a partly unrolled loop so that the next token's
            // softplus / exp work (independent of the state) overlaps this token's state update.
            auto step = [&](int const c) {
                float const uu = s.u[row][c];
                float dt = s.dt[row][c] + bias;
                if (args.deltaSoftplus)
                {
                    dt = softplus(dt);
                }
                sumDt += dt;
                float const du = dt * uu;
                float acc4[4] = {0.f, 0.f, 0.f, 0.f};
                float4 const* Bq = &s.B[c][lane * (kSPT / 4)];
                float4 const* Cq = &s.C[c][lane * (kSPT / 4)];
#pragma unroll
                for (int q = 0; q < kSPT / 4; ++q)
                {
                    float4 const bq = Bq[q];
                    float const bv[4] = {bq.x, bq.y, bq.z, bq.w};
                    float cv[4] = {0.f, 0.f, 0.f, 0.f};
                    if (kOutputPass)
                    {
                        float4 const cq = Cq[q];
                        cv[0] = cq.x;
                        cv[1] = cq.y;
                        cv[2] = cq.z;
                        cv[3] = cq.w;
                    }
#pragma unroll
                    for (int j = 0; j < 4; ++j)
                    {
                        int const i = 4 * q + j;
                        float const a = exp2f(dt * A2[i]);
                        h[i] = fmaf(a, h[i], du * bv[j]);
                        if (kOutputPass)
                        {
                            acc4[j] = fmaf(h[i], cv[j], acc4[j]);
                        }
                    }
                }
                float acc = (acc4[0] + acc4[1]) + (acc4[2] + acc4[3]);
                if (kOutputPass)
                {
#pragma unroll
                    for (int off = kLPC / 2; off > 0; off /= 2)
                    {
                        acc += __shfl_xor_sync(0xffffffffu, acc, off, kLPC);
                    }
                    if (lane == 0)
                    {
                        float y = acc + Dd * uu;
                        if (P.z)
                        {
                            float const zz = s.z[row][c];
                            y *= zz / (1.f + __expf(-zz));
                        }
                        if (di > 0)
                        {
                            y += s.prev[row][c];
                        }
                        if (di == args.numDirections - 1)
                        {
                            y *= args.outScale;
                        }
                        s.u[row][c] = y; // u[row][c] is not read again
                    }
                }
                        };
            if (tValid == kTile)
            {
#pragma unroll(kTokenUnroll)
                for (int jj = 0; jj < kTile; ++jj)
                {
                    step(reverse ? kTile - 1 - jj : jj);
                }
            }
            else
            {
                for (int jj = 0; jj < tValid; ++jj)
                {
                    step(reverse ? tValid - 1 - jj : jj);
                }
            }
            if (kOutputPass)
            {
                __syncthreads();
                storeRows<T, kRows>(out, s.u, rowBase, rowsValid, args.seqlen, t0, tValid);
            }
        }

        if (!kOutputPass && channelValid)
        {
            int64_t const idx = ((static_cast<int64_t>(di) * args.batch + b) * args.dim + d) * args.numChunks + chunk;
#pragma unroll
            for (int i = 0; i < kSPT; ++i)
            {
                int const n = lane * kSPT + i;
                if (n < args.dstate)
                {
                    args.hEnd[idx * args.dstate + n] = h[i];
                }
            }
            if (lane == 0)
            {
                args.sumDt[idx] = sumDt;
            }
        }
    }
}

template <typename T, int kSPT, int kLPC>
cudaError_t launchTyped(KernelArgs const& args, cudaStream_t stream)
{
    constexpr int kRows = kThreads / kLPC;
    dim3 const block(kThreads);
    unsigned const tiles = static_cast<unsigned>((args.dim + kRows - 1) / kRows);
    if (args.numChunks > 1)
    {
        dim3 const gridA(tiles, args.batch, args.numChunks * args.numDirections);
        selectiveScanKernel<T, kSPT, kLPC, false><<<gridA, block, 0, stream>>>(args);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess)
        {
            return err;
        }
    }
    dim3 const gridB(tiles, args.batch, args.numChunks);
    selectiveScanKernel<T, kSPT, kLPC, true><<<gridB, block, 0, stream>>>(args);
    return cudaGetLastError();
}

template <typename T>
cudaError_t launchForLayout(KernelArgs const& args, int spt, int lpc, cudaStream_t stream)
{
    switch (lpc * 100 + spt)
    {
    case 104: return launchTyped<T, 4, 1>(args, stream);
    case 108: return launchTyped<T, 8, 1>(args, stream);
    case 116: return launchTyped<T, 16, 1>(args, stream);
    case 204: return launchTyped<T, 4, 2>(args, stream);
    case 208: return launchTyped<T, 8, 2>(args, stream);
    case 216: return launchTyped<T, 16, 2>(args, stream);
    case 404: return launchTyped<T, 4, 4>(args, stream);
    case 416: return launchTyped<T, 16, 4>(args, stream);
    case 816: return launchTyped<T, 16, 8>(args, stream);
    case 1616: return launchTyped<T, 16, 16>(args, stream);
    default: return cudaErrorInvalidConfiguration;
    }
}

//! Fewest lanes a channel needs (at most 16 states a thread).
int baseLanes(int dstate)
{
    return dstate <= 16 ? 1 : (dstate <= 32 ? 2 : (dstate <= 64 ? 4 : (dstate <= 128 ? 8 : 16)));
}

int statesPerThread(int dstate, int lanes)
{
    int const need = (dstate + lanes - 1) / lanes;
    return need <= 4 ? 4 : (need <= 8 ? 8 : 16);
}

//! SM count of the current device, queried once per device (the launch path asks several times).
int smCountOf(SelectiveScanParams const& p)
{
    if (p.smCount > 0)
        return p.smCount;
    constexpr int kMaxDevices = 64;
    static std::atomic<int> cache[kMaxDevices] = {};
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess)
        return 108;
    if (dev >= 0 && dev < kMaxDevices && cache[dev].load(std::memory_order_relaxed) > 0)
        return cache[dev].load(std::memory_order_relaxed);
    int sm = 0;
    if (cudaDeviceGetAttribute(&sm, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sm <= 0)
        return 108; // not cached: a later call may succeed
    if (dev >= 0 && dev < kMaxDevices)
        cache[dev].store(sm, std::memory_order_relaxed);
    return sm;
}

//! Threads per SM below which the exp unit starves (tuned on the H100, bench/RESULTS.md).
constexpr int64_t kTargetThreadsPerSm = 512;

} // namespace

int32_t selectiveScanChooseLanes(SelectiveScanParams const& p)
{
    int const base = baseLanes(p.dstate);
    if (p.lanesPerChannel > 0)
    {
        int const asked = p.lanesPerChannel >= 4 ? 4 : (p.lanesPerChannel >= 2 ? 2 : 1);
        return p.dstate <= 16 ? asked : base; // splitting is offered for dstate <= 16 only
    }
    // Launch shape from channels per SM (measured on the H100 over Vim's shapes, bench/RESULTS.md):
    // plenty of channels -> one lane each; fewer -> split a channel's states over 2-4 lanes (no
    // extra work) before the sequence is chunked (a second pass over the tokens); long sequences at
    // moderate batch keep one lane so that chunks stay short.
    if (p.dstate > 16)
        return base;
    double const perSm = static_cast<double>(p.batch) * p.dim / smCountOf(p);
    if (perSm >= 256)
        return 1;
    if (perSm >= 64)
        return 4;
    if (p.seqlen >= 1024 && perSm >= 8)
        return 1;
    return perSm >= 16 ? 2 : 4;
}

char const* selectiveScanValidate(SelectiveScanParams const& p)
{
    if (p.batch < 1 || p.dim < 1 || p.seqlen < 1)
        return "batch, dim and seqlen must be >= 1";
    if (p.batch > 65535)
        return "batch must be <= 65535";
    if (p.dstate < 1 || p.dstate > 256)
        return "dstate must be in 1..256";
    if (p.numDirections != 1 && p.numDirections != 2)
        return "numDirections must be 1 or 2";
    if (p.numChunks < 0)
        return "numChunks must be >= 0";
    if (!p.out)
        return "out is null";
    for (int i = 0; i < p.numDirections; ++i)
    {
        ScanDirection const& d = p.dir[i];
        if (!d.u || !d.delta || !d.A || !d.B || !d.C)
            return "u, delta, A, B and C must not be null";
    }
    return nullptr;
}

int32_t selectiveScanChooseChunks(SelectiveScanParams const& p)
{
    if (p.numChunks > 0)
        return std::min(p.numChunks, p.seqlen);
    // Enough resident warps to keep the exp unit busy. Below that, cut the sequence (each extra
    // chunk costs a second pass over the tokens, so only when it pays).
    int64_t const threads = static_cast<int64_t>(p.batch) * p.dim * selectiveScanChooseLanes(p);
    int64_t const want = static_cast<int64_t>(smCountOf(p)) * kTargetThreadsPerSm;
    if (threads >= want || static_cast<double>(p.batch) * p.dim / smCountOf(p) >= 64)
        return 1;
    int64_t const byWork = (want + threads - 1) / threads;
    int64_t const byLength = std::max<int64_t>(1, p.seqlen / 32);
    return static_cast<int32_t>(std::max<int64_t>(1, std::min<int64_t>({byWork, byLength, 64})));
}

size_t selectiveScanWorkspaceSize(SelectiveScanParams const& p)
{
    int64_t const chunks = selectiveScanChooseChunks(p);
    if (chunks <= 1)
        return 0;
    int64_t const rows = static_cast<int64_t>(p.numDirections) * p.batch * p.dim * chunks;
    size_t const bytes = static_cast<size_t>(rows) * (p.dstate + 1) * sizeof(float);
    return (bytes + 255) & ~static_cast<size_t>(255);
}

cudaError_t selectiveScanForward(SelectiveScanParams const& p, void* workspace, size_t workspaceBytes, cudaStream_t stream)
{
    if (selectiveScanValidate(p) != nullptr)
        return cudaErrorInvalidValue;
    KernelArgs args{};
    args.batch = p.batch;
    args.dim = p.dim;
    args.seqlen = p.seqlen;
    args.dstate = p.dstate;
    args.numDirections = p.numDirections;
    args.deltaSoftplus = p.deltaSoftplus;
    args.outScale = p.outScale;
    args.dir[0] = p.dir[0];
    args.dir[1] = p.dir[1];
    args.out = p.out;
    args.numChunks = selectiveScanChooseChunks(p);
    args.chunkLen = (p.seqlen + args.numChunks - 1) / args.numChunks;
    args.numChunks = (p.seqlen + args.chunkLen - 1) / args.chunkLen; // no empty chunk
    if (args.numChunks > 1)
    {
        int64_t const rows = static_cast<int64_t>(p.numDirections) * p.batch * p.dim * args.numChunks;
        size_t const need = static_cast<size_t>(rows) * (p.dstate + 1) * sizeof(float);
        if (!workspace || workspaceBytes < need)
            return cudaErrorInvalidValue;
        args.hEnd = static_cast<float*>(workspace);
        args.sumDt = args.hEnd + rows * p.dstate;
    }
    int const lanes = selectiveScanChooseLanes(p);
    int const spt = statesPerThread(p.dstate, lanes);
    switch (p.dtype)
    {
    case ScanDType::kFLOAT: return launchForLayout<float>(args, spt, lanes, stream);
    case ScanDType::kHALF: return launchForLayout<__half>(args, spt, lanes, stream);
    case ScanDType::kBF16: return launchForLayout<__nv_bfloat16>(args, spt, lanes, stream);
    }
    return cudaErrorInvalidValue;
}

} // namespace vim
