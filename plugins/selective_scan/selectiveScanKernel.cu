/*
 * Selective scan forward: the launcher behind selectiveScanKernel.h. It validates a call, chooses the
 * lanes a channel, the sequence chunks and the kernel, and launches:
 *   scanChunkedKernel.cuh  the chunked kernel (pass A: chunk end states; pass B: outputs), any layout;
 *   scanWsKernel.cuh       the warp-specialised kernel, for launches that fill whole waves of 16-bit,
 *                          one-lane, one-chunk rows (the fast path at batch 128);
 *   scanTiles.cuh          what both share (tiles, copy plans, per-token inputs).
 */
#include "scanChunkedKernel.cuh"
#include "scanWsKernel.cuh"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

namespace vim
{
namespace
{

constexpr int kMaxDevices = 64;
using PerDevice = std::atomic<int>[kMaxDevices]; //!< a positive value per device once known, else 0

/*
 * value = cache[current device]; the first time, compute(dev, value) finds it (kept only when that
 * succeeds with a positive value, so a failed query is asked again later). The launch path asks for
 * these values on every call: each costs a device query once per device.
 */
template <typename F>
cudaError_t oncePerDevice(PerDevice& cache, int& value, F&& compute)
{
    int dev = 0;
    cudaError_t err = cudaGetDevice(&dev);
    if (err != cudaSuccess)
        return err;
    bool const cacheable = dev >= 0 && dev < kMaxDevices;
    if (cacheable && cache[dev].load(std::memory_order_relaxed) > 0)
    {
        value = cache[dev].load(std::memory_order_relaxed);
        return cudaSuccess;
    }
    err = compute(dev, value);
    if (err == cudaSuccess && value > 0 && cacheable)
        cache[dev].store(value, std::memory_order_relaxed);
    return err;
}

//! Dynamic shared memory of a kernel instantiation; raises the kernel's limit once when over 48 KB.
template <typename T, int kSPT, int kLPC, bool kOutputPass>
cudaError_t prepareSmem(size_t& bytes)
{
    bytes = sizeof(Tiles<T, kSPT, kLPC>);
    if (bytes <= 48 * 1024)
        return cudaSuccess;
    // The limit is a per-device function attribute: raised once per device.
    static PerDevice raised = {};
    int done = 0;
    return oncePerDevice(raised, done, [&](int, int& v) {
        v = 1;
        return cudaFuncSetAttribute(selectiveScanKernel<T, kSPT, kLPC, kOutputPass>,
            cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    });
}

template <typename T, int kSPT, int kLPC>
cudaError_t launchTyped(KernelArgs const& args, cudaStream_t stream)
{
    constexpr int kRows = kThreads / kLPC;
    dim3 const block(kThreads);
    unsigned const tiles = static_cast<unsigned>((args.dim + kRows - 1) / kRows);
    size_t smem = 0;
    if (args.numChunks > 1)
    {
        cudaError_t err = prepareSmem<T, kSPT, kLPC, false>(smem);
        if (err != cudaSuccess)
        {
            return err;
        }
        dim3 const gridA(tiles, args.batch, args.numChunks * args.numDirections);
        selectiveScanKernel<T, kSPT, kLPC, false><<<gridA, block, smem, stream>>>(args);
        err = cudaGetLastError();
        if (err != cudaSuccess)
        {
            return err;
        }
    }
    cudaError_t const err = prepareSmem<T, kSPT, kLPC, true>(smem);
    if (err != cudaSuccess)
    {
        return err;
    }
    dim3 const gridB(tiles, args.batch, args.numChunks);
    selectiveScanKernel<T, kSPT, kLPC, true><<<gridB, block, smem, stream>>>(args);
    return cudaGetLastError();
}

//! Calls f(integral_constant<kSPT>, integral_constant<kLPC>) for the compiled (states, lanes) layout.
template <typename F>
cudaError_t withLayout(int spt, int lpc, F&& f)
{
    using std::integral_constant;
    switch (lpc * 100 + spt)
    {
    case 104: return f(integral_constant<int, 4>{}, integral_constant<int, 1>{});
    case 108: return f(integral_constant<int, 8>{}, integral_constant<int, 1>{});
    case 116: return f(integral_constant<int, 16>{}, integral_constant<int, 1>{});
    case 204: return f(integral_constant<int, 4>{}, integral_constant<int, 2>{});
    case 208: return f(integral_constant<int, 8>{}, integral_constant<int, 2>{});
    case 216: return f(integral_constant<int, 16>{}, integral_constant<int, 2>{});
    case 404: return f(integral_constant<int, 4>{}, integral_constant<int, 4>{});
    case 416: return f(integral_constant<int, 16>{}, integral_constant<int, 4>{});
    case 802: return f(integral_constant<int, 2>{}, integral_constant<int, 8>{});
    case 816: return f(integral_constant<int, 16>{}, integral_constant<int, 8>{});
    case 1616: return f(integral_constant<int, 16>{}, integral_constant<int, 16>{});
    default: return cudaErrorInvalidConfiguration;
    }
}

template <typename T>
cudaError_t launchForLayout(KernelArgs const& args, int spt, int lpc, cudaStream_t stream)
{
    return withLayout(spt, lpc, [&](auto spt_, auto lpc_) {
        return launchTyped<T, decltype(spt_)::value, decltype(lpc_)::value>(args, stream);
    });
}

/*
 * Blocks of the output-pass kernel that one SM of the current device holds at once (occupancy query:
 * registers and shared memory of this layout), cached per device. Without a device to ask, the
 * launch bounds' guaranteed minimum.
 */
template <typename T>
int residentBlocksOnDevice(int spt, int lpc)
{
    int blocks = 0;
    cudaError_t const err = withLayout(spt, lpc, [&](auto spt_, auto lpc_) {
        constexpr int kS = decltype(spt_)::value;
        constexpr int kL = decltype(lpc_)::value;
        static PerDevice cache = {};
        return oncePerDevice(cache, blocks, [&](int, int& n) {
            size_t smem = 0;
            cudaError_t const e = prepareSmem<T, kS, kL, true>(smem);
            return e != cudaSuccess
                ? e
                : cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, selectiveScanKernel<T, kS, kL, true>, kThreads, smem);
        });
    });
    if (err != cudaSuccess)
    {
        cudaGetLastError(); // a failed query leaves no sticky error behind
    }
    return err == cudaSuccess && blocks > 0 ? blocks : minBlocksFor(spt);
}

/*
 * Tokens a chunk of `chunks` covers: an even split, rounded up to whole tiles when `wholeTiles` (a
 * partial tile takes the slower generic token loop). Rounding up can only lower the chunk count, so a
 * launch never needs more workspace than the count it was sized for.
 */
int chunkLength(int seqlen, int chunks, bool wholeTiles)
{
    int const even = (seqlen + chunks - 1) / chunks;
    return wholeTiles && chunks > 1 ? (even + kTile - 1) / kTile * kTile : even;
}

//! Fewest lanes a channel needs (at most 16 states a thread).
int baseLanes(int dstate)
{
    return dstate <= 16 ? 1 : (dstate <= 32 ? 2 : (dstate <= 64 ? 4 : (dstate <= 128 ? 8 : 16)));
}

int statesPerThread(int dstate, int lanes)
{
    int const need = (dstate + lanes - 1) / lanes;
    if (lanes == 8 && dstate <= 16) // the 2-state layout
        return 2;
    return need <= 4 ? 4 : (need <= 8 ? 8 : 16);
}

int residentBlocksPerSm(SelectiveScanParams const& p, int lanes)
{
    int const spt = statesPerThread(p.dstate, lanes);
    if (p.smCount > 0) // sizing for a device given by its SM count (TensorRT workspace): no query
        return minBlocksFor(spt);
    switch (p.dtype)
    {
    case ScanDType::kFLOAT: return residentBlocksOnDevice<float>(spt, lanes);
    case ScanDType::kHALF: return residentBlocksOnDevice<__half>(spt, lanes);
    case ScanDType::kBF16: return residentBlocksOnDevice<__nv_bfloat16>(spt, lanes);
    }
    return minBlocksFor(spt);
}

//! SM count of the current device, queried once per device (the launch path asks several times).
int smCountOf(SelectiveScanParams const& p)
{
    if (p.smCount > 0)
        return p.smCount;
    static PerDevice cache = {};
    int sm = 0;
    cudaError_t const err = oncePerDevice(
        cache, sm, [](int dev, int& v) { return cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev); });
    return err == cudaSuccess && sm > 0 ? sm : 108; // 108: no device to ask (not cached: a later call may succeed)
}

//! 8-byte cp.async needs 8-byte aligned tensors (a tensor can be a view at any element offset).
bool granuleAligned(void const* ptr)
{
    return (reinterpret_cast<uintptr_t>(ptr) & 7u) == 0;
}

/*
 * The warp-specialised kernel when it applies: one block an SM must fit (shared memory,
 * registers; occupancy query once per device), a block's rows must be indexable in 32 bits, and the
 * grid must not leave more than a sixth of its last wave empty (a block holds 384 channels: batch 128
 * fills whole waves of 132 SMs for Vim-T/S/B, small batches do not). Returns false to keep the other kernel.
 */
bool chunkAligned(void const* ptr)
{
    return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0;
}

template <typename T>
bool wsApplies(KernelArgs const& args, int sms, bool force)
{
    if (args.numChunks != 1 || args.dstate > 16 || args.rowStride % 8 != 0
        || args.outBatchStride % 8 != 0 || !chunkAligned(args.out)
        || static_cast<int64_t>(args.rowStride) * kWsRows + kTile >= INT32_MAX)
        return false;
    for (int i = 0; i < args.numDirections; ++i)
    {
        ScanDirection const& P = args.dir[i];
        if (!chunkAligned(P.u) || !chunkAligned(P.delta) || !chunkAligned(P.z))
            return false;
        for (int k = 0; k < 3; ++k)
        {
            if (args.rowBatchStride[i][k] % 8 != 0)
                return false;
        }
    }
    // force (ScanKernel::kWarpSpecialized, for tests): wherever the kernel can run, however few blocks.
    int64_t const blocks = static_cast<int64_t>((args.dim + kWsRows - 1) / kWsRows) * args.batch;
    int64_t const waves = (blocks + sms - 1) / sms;
    if (!force && blocks * 6 < waves * sms * 5)
        return false;
    static PerDevice resident = {};
    int fits = 0;
    cudaError_t const err = oncePerDevice(resident, fits, [](int dev, int& v) {
        int const bytes = static_cast<int>(sizeof(WsTiles));
        int major = 0;
        cudaError_t e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
        if (e != cudaSuccess || major < 9)
        {
            v = 2; // compiled empty before sm_90 (see the kernel)
            return e;
        }
        // The kernel's body exists only where it was compiled for sm_90 or later: a library whose newest
        // code for this GPU is older PTX (say compute_75, JIT-compiled by the driver) holds the empty body.
        cudaFuncAttributes attr{};
        e = cudaFuncGetAttributes(&attr, selectiveScanWsKernel<T>);
        if (e != cudaSuccess || attr.ptxVersion < 90)
        {
            v = 2;
            return e;
        }
        e = cudaFuncSetAttribute(selectiveScanWsKernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
        int n = 0;
        if (e == cudaSuccess)
            e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, selectiveScanWsKernel<T>, kWsThreads, bytes);
        v = e == cudaSuccess && n >= 1 ? 1 : 2; // 2: "does not fit" (cached too: only values > 0 are)
        return cudaSuccess;
    });
    if (err != cudaSuccess)
    {
        cudaGetLastError();
        return false;
    }
    return fits == 1;
}

template <typename T>
cudaError_t launchWs(KernelArgs const& args, cudaStream_t stream)
{
    dim3 const grid(static_cast<unsigned>((args.dim + kWsRows - 1) / kWsRows), args.batch);
    selectiveScanWsKernel<T><<<grid, kWsThreads, sizeof(WsTiles), stream>>>(args);
    return cudaGetLastError();
}

} // namespace

int32_t selectiveScanChooseLanes(SelectiveScanParams const& p)
{
    int const base = baseLanes(p.dstate);
    if (p.lanesPerChannel > 0)
    {
        int const asked
            = p.lanesPerChannel >= 8 ? 8 : (p.lanesPerChannel >= 4 ? 4 : (p.lanesPerChannel >= 2 ? 2 : 1));
        return p.dstate <= 16 ? asked : base; // splitting is offered for dstate <= 16 only
    }
    // Launch shape from channels per SM (measured on the H100 and H200 over Vim's shapes):
    // plenty of channels -> one lane each; fewer -> split a channel's states over 2-8 lanes (no
    // extra work) before the sequence is chunked (a second pass over the tokens); 512+ tokens at
    // moderate batch take 2 lanes and chunks sized for occupancy.
    if (p.dstate > 16)
        return base;
    double const perSm = static_cast<double>(p.batch) * p.dim / smCountOf(p);
    if (perSm >= 256)
        return 1;
    if (perSm >= 64)
        return 4;
    // 8..63 channels an SM at 512 tokens or more: 2 lanes of 8 states, chunked (selectiveScanChooseChunks).
    // 2026-12-01, H200, kernel v16, bench_scan --choices: vim_tiny batch 8 @ 1025 / 1601 / 2117 / 4097 122 /
    // 181 / 235 / 433 us vs 140 / 205 / 251 / 453 with one lane, vim_small batch 8 @ 577 126 vs 136 with 4
    // lanes, vim_base batch 1 @ 6085 332 vs 392 (docs/benchmarks.md).
    if (p.seqlen >= 512 && perSm >= 8)
        return 2;
    // 40..63 channels an SM at short sequences: 8 lanes of 2 states each, one chunk (2026-12-01, H200,
    // bench_scan --explore: vim_small batch 8 @ 197 55.0 vs 59.1 us for 4 lanes x 3 chunks, vim_tiny
    // batch 16 52.5 vs 57.9; slower at 23 and 93 channels an SM and at L = 577).
    if (perSm >= 40) // (shorter than 512 tokens here: longer ones took 2 lanes above)
        return 8;
    // Below 64 channels an SM, 4 split lanes beat 2 (2026-12-01, H200, kernel v15, launcher's own chunks:
    // vim_tiny batch 8 @ 197 41.1 vs 44.4 us, vim_small 60.8 vs 62.4).
    return 4;
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
    if (p.rowStride != 0 && p.rowStride < p.seqlen)
        return "rowStride must be 0 (= seqlen) or >= seqlen";
    int64_t const stride = p.rowStride > 0 ? p.rowStride : p.seqlen;
    if (stride * kThreads > INT32_MAX)
        return "rowStride must be below 2^25 (a block's rows are indexed in 32 bits)";
    auto rowsOk = [&](int64_t s) { return batchStrideValid(s, p.dim, stride, p.batch, p.seqlen); };
    if (!rowsOk(p.outBatchStride))
        return "the batch stride of out is neither batch-major (>= dim * rowStride) nor channel-major (>= seqlen, "
               "batch * stride <= rowStride)";
    for (int i = 0; i < p.numDirections; ++i)
    {
        ScanDirection const& d = p.dir[i];
        if (!d.u || !d.delta || !d.A || !d.B || !d.C)
            return "u, delta, A, B and C must not be null";
        if (!rowsOk(d.uBatchStride) || !rowsOk(d.deltaBatchStride) || !rowsOk(d.zBatchStride))
            return "a batch stride of u, delta or z is neither batch-major (>= dim * rowStride) nor channel-major "
                   "(>= seqlen, batch * stride <= rowStride)";
        auto statesOk = [&](int64_t s) { return batchStrideValid(s, p.dstate, stride, p.batch, p.seqlen); };
        if (!statesOk(d.bBatchStride) || !statesOk(d.cBatchStride))
            return "a batch stride of B or C is neither batch-major (>= dstate * rowStride) nor channel-major "
                   "(>= seqlen, batch * stride <= rowStride)";
    }
    return nullptr;
}

int32_t selectiveScanChooseChunks(SelectiveScanParams const& p)
{
    if (p.batch < 1 || p.dim < 1 || p.seqlen < 1)
        return 1; // empty (or invalid) sizes: nothing to split; the work-per-thread ratio below would divide by 0
    if (p.numChunks > 0)
        return std::min(p.numChunks, p.seqlen);
    // Plenty of channels: one chunk. Otherwise (but for the 2-lane layout at 512+ tokens, below) cut the
    // sequence into as many chunks as fill the GPU's resident blocks once, never more: each chunk costs a
    // second pass over its tokens, and a grid one block over a whole wave runs a second, nearly empty
    // wave (measured on the H100 at L = 6085, batch 8: vim_tiny 16 chunks 689 us vs 22 chunks 826 us;
    //).
    int const lanes = selectiveScanChooseLanes(p);
    int const spt = statesPerThread(p.dstate, lanes);
    if (spt == 2)
        return 1; // the 8-lane layout of 2 states is chosen for one pass (with 4 chunks it was 1.5x slower)
    int64_t const threads = static_cast<int64_t>(p.batch) * p.dim * lanes;
    int const sms = smCountOf(p);
    if (static_cast<double>(p.batch) * p.dim / sms >= 64)
        return 1;
    int64_t want = 0;
    if (lanes == 2 && spt == 8 && p.seqlen >= 512)
    {
        // Two lanes of 8 states at 512+ tokens: chunks enough for the one-lane layout's occupancy (6 blocks,
        // 12 warps an SM: past it more chunks only add pass A's work), and none longer than
        // kLongChunk tokens (at 6085 tokens longer chunks were slower; 2026-12-01, H200,
        // vim_small batch 8: 4 chunks 1167 us, 13 chunks 1136). Waves past the first are
        // fine here: the chunks are long, so a last partial wave costs little.
        int64_t const byOccupancy = std::max<int64_t>(1, static_cast<int64_t>(sms) * minBlocksFor(16) * kThreads / threads);
        want = std::max<int64_t>(byOccupancy, (p.seqlen + kLongChunk - 1) / kLongChunk);
    }
    else
    {
        int64_t const resident = static_cast<int64_t>(sms) * residentBlocksPerSm(p, lanes) * kThreads;
        want = std::max<int64_t>(1, resident / threads);
    }
    // Chunks of at least 32 tokens; one tile (16) when a channel is split over 4 lanes (batch 1: the time
    // is the latency of the chunk's token steps; 2026-12-01, H200, vim_tiny batch 1 @ 197: 13 chunks
    // 18.0 us vs 6 chunks 21.2 us).
    int64_t const byLength = lanes >= 4 ? (p.seqlen + kTile - 1) / kTile : std::max<int64_t>(1, p.seqlen / 32);
    int const chunks = static_cast<int>(std::min<int64_t>({want, byLength, 64}));
    int const len = chunkLength(p.seqlen, chunks, true);
    return (p.seqlen + len - 1) / len;
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
    args.rowStride = p.rowStride > 0 ? p.rowStride : p.seqlen;
    int64_t const rowsPerBatch = static_cast<int64_t>(p.dim) * args.rowStride; // the packed batch stride
    args.outBatchStride = p.outBatchStride > 0 ? p.outBatchStride : rowsPerBatch;
    args.outExtent = rowExtentOf(args, args.outBatchStride);
    int64_t const elemsPerGranule = p.dtype == ScanDType::kFLOAT ? 2 : 4;
    args.asyncCopy = granuleAligned(p.out);
    for (int i = 0; i < p.numDirections; ++i)
    {
        ScanDirection const& d = p.dir[i];
        int64_t const states = static_cast<int64_t>(p.dstate) * args.rowStride;
        args.rowBatchStride[i][0] = d.uBatchStride > 0 ? d.uBatchStride : rowsPerBatch;
        args.rowBatchStride[i][1] = d.deltaBatchStride > 0 ? d.deltaBatchStride : rowsPerBatch;
        args.rowBatchStride[i][2] = d.zBatchStride > 0 ? d.zBatchStride : rowsPerBatch;
        args.bcBatchStride[i][0] = d.bBatchStride > 0 ? d.bBatchStride : states;
        args.bcBatchStride[i][1] = d.cBatchStride > 0 ? d.cBatchStride : states;
        // cp.async needs 8-byte aligned tensors whose tiles sit at the same element phase as the
        // output's (the shared-memory layout is common to all of them).
        args.asyncCopy = args.asyncCopy && granuleAligned(d.u) && granuleAligned(d.delta) && granuleAligned(d.z);
        for (int k = 0; k < 3; ++k)
        {
            args.asyncCopy
                = args.asyncCopy && (args.rowBatchStride[i][k] - args.outBatchStride) % elemsPerGranule == 0;
        }
    }
    args.numChunks = selectiveScanChooseChunks(p);
    // Chosen chunks end on whole tiles, as selectiveScanChooseChunks counted them; asked-for counts are exact.
    args.chunkLen = chunkLength(p.seqlen, args.numChunks, p.numChunks <= 0);
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
    if (lanes == 1)
    {
        int const sms = smCountOf(p);
        bool const force = p.kernel == ScanKernel::kWarpSpecialized;
        switch (p.dtype)
        {
        case ScanDType::kFLOAT:
            break;
        case ScanDType::kHALF:
            if (wsApplies<__half>(args, sms, force))
                return launchWs<__half>(args, stream);
            break;
        case ScanDType::kBF16:
            if (wsApplies<__nv_bfloat16>(args, sms, force))
                return launchWs<__nv_bfloat16>(args, stream);
            break;
        }
    }
    switch (p.dtype)
    {
    case ScanDType::kFLOAT: return launchForLayout<float>(args, spt, lanes, stream);
    case ScanDType::kHALF: return launchForLayout<__half>(args, spt, lanes, stream);
    case ScanDType::kBF16: return launchForLayout<__nv_bfloat16>(args, spt, lanes, stream);
    }
    return cudaErrorInvalidValue;
}

} // namespace vim
