/*
 * The warp-specialised selective-scan kernel (16-bit, one lane, one chunk, 16-byte aligned rows), launched
 * by selectiveScanKernel.cu where it applies (wsApplies).
 */
#pragma once

#include "scanTiles.cuh"

namespace vim
{
namespace
{

/*
 * Warp-specialised output kernel.
 *
 * Why: in the one-lane kernel above every thread both moves tiles and scans, and ncu (H200, vim_small
 * batch 128) charges the tile code (cp.async issue, B / C staging, the y store, their address
 * arithmetic and the waits on them) with ~31% of the instructions and ~42% of the stall samples of the
 * warps that also have to keep the exp unit busy. Here four copy warps do all of it and twelve scan warps
 * do nothing but the token loops: a block is one SM's worth (512 threads, one channel a scan thread, 384
 * channels of one batch), the tiles flow through kWsStages shared-memory stages, and two mbarriers a stage
 * hand it over: FULL (completes when every copy thread's cp.async have landed and its B / C are stored;
 * a scan warp waits for it, not for the other scan warps) and EMPTY (every scan thread arrives once it has
 * written the tile's y in place of u; the copy threads wait, store y and refill the stage). With named
 * barriers instead every scan warp met the others at every tile: 4-7% slower (that variant was removed
 * after the measurement; commit 545cf39 still builds it with -DVIM_SCAN_WS_MBAR=0).
 * Measured (H200, 2026-12-01, same run, fast-path layout, both directions): vim_tiny / small / base batch 128
 * 153.9 / 297.1 / 573.6 us against 192.0 / 365.3 / 696.9 for the kernel above; the scan warps alone (no
 * copies, stale tiles) 122.8 us at vim_tiny. Rows move as 16-byte chunks (cp.async.cg in, 16-byte stores
 * out), so the kernel takes 16-bit tensors whose row tiles are 16-byte aligned (the fast path's padded
 * channel-major rows); one chunk, one lane, up to 16 states; else the launcher keeps the kernel above (an
 * earlier version copied 8-byte granules of any row through RowPlan and ran 1.2-1.4x slower than it). The
 * per-token arithmetic is the one-lane kernel's, in the same order: both give the same bits.
 */
constexpr int kWsCopyThreads = 128; // copy threads (4 warps: one a scheduler), threads 0..127 of a block
constexpr int kWsRows = 384;        // scan threads (12 warps), one channel each
constexpr int kWsThreads = kWsCopyThreads + kWsRows;
constexpr int kWsStages = 2; // shared-memory stages: 3 was 8-11% slower
constexpr int kWsChunksPerRow = kTile * 2 / 16; // 16-byte chunks of a 16-bit row tile
static_assert(kWsRows * kWsChunksPerRow % kWsCopyThreads == 0, "copy items spread evenly");

/*
 * Byte offset of row r in a row tile: 32-byte rows with 16 bytes of padding after every 4, so that every row
 * stays 16-byte aligned for the chunk copies and 8 consecutive rows' 16-byte chunks fall in distinct banks.
 * The 32 rows a scan warp reads at one token then fall in 8 bank groups: 4-way conflicts, which the token
 * pairs below halve (16-byte alignment allows no layout with fewer).
 */
__host__ __device__ constexpr int wsRowOffset(int r)
{
    return r * kTile * 2 + (r >> 2) * 16;
}
constexpr int kWsTileBytes = wsRowOffset(kWsRows);

struct WsTiles
{
    alignas(16) unsigned char u[kWsStages][kWsTileBytes]; // y overwrites u
    alignas(16) unsigned char dt[kWsStages][kWsTileBytes];
    alignas(16) unsigned char z[kWsStages][kWsTileBytes];
    alignas(16) unsigned char prev[kWsStages][kWsTileBytes];
    alignas(16) float B[kWsStages][kTile][16 + 4];
    alignas(16) float C[kWsStages][kTile][16 + 4];
    alignas(8) uint64_t full[kWsStages]; // mbarriers
    alignas(8) uint64_t empty[kWsStages];
};

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900 // the helpers of the kernel below, which needs sm_90
constexpr int kBarCopy = 1; // the copy warps' named barrier (0 is __syncthreads')

__device__ __forceinline__ void barSync(int id, int count)
{
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

__device__ __forceinline__ unsigned smemAddress(void const* p)
{
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbarInit(uint64_t* bar, unsigned count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smemAddress(bar)), "r"(count) : "memory");
}

//! One arrival (release: this thread's earlier shared-memory writes are seen by the waiters).
__device__ __forceinline__ void mbarArrive(uint64_t* bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smemAddress(bar)) : "memory");
}

//! One arrival once every cp.async this thread has issued so far has landed (counted in the init count).
__device__ __forceinline__ void mbarArriveOnCopies(uint64_t* bar)
{
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smemAddress(bar)) : "memory");
}

//! Wait (acquire) until the phase of the given parity has completed.
__device__ __forceinline__ void mbarWait(uint64_t* bar, unsigned parity)
{
    asm volatile(
        "{\n"
        ".reg .pred done;\n"
        "WAIT_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra WAIT_%=;\n"
        "}\n" ::"r"(smemAddress(bar)),
        "r"(parity)
        : "memory");
}

__device__ __forceinline__ void cpAsync16(unsigned smemAddr, void const* gmem)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smemAddr), "l"(gmem) : "memory");
}
#endif

/*
 * Compiled for sm_90 and later only (mbarrier.try_wait, 16-byte cp.async.cg with mbarrier arrivals); for
 * older architectures the body is empty and the launcher never takes it (wsApplies asks the device).
 */
template <typename T>
__global__ void __launch_bounds__(kWsThreads, 1) selectiveScanWsKernel(KernelArgs const args)
{
    static_assert(sizeof(T) == 2, "16-bit tensors");
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
    extern __shared__ __align__(16) unsigned char smemRaw[];
    WsTiles& s = *reinterpret_cast<WsTiles*>(smemRaw);

    int const b = blockIdx.y;
    int const d0 = blockIdx.x * kWsRows;
    int const rowsValid = min(kWsRows, args.dim - d0);
    int const numTiles = (args.seqlen + kTile - 1) / kTile;
    int const total = args.numDirections * numTiles;
    int64_t const outBase = b * args.outBatchStride + static_cast<int64_t>(d0) * args.rowStride;
    T* const out = static_cast<T*>(args.out);
    constexpr int kWsCopyItems = kWsRows * kWsChunksPerRow / kWsCopyThreads;
    if (threadIdx.x == 0)
    {
        for (int st = 0; st < kWsStages; ++st)
        {
            mbarInit(&s.full[st], 2 * kWsCopyThreads); // each copy thread: its cp.async landed, its B / C stored
            mbarInit(&s.empty[st], kWsRows);           // each scan thread: done with the stage
        }
    }
    __syncthreads();

    if (threadIdx.x < kWsCopyThreads)
    {
        // ---- copy warps: tiles in, y out. Item i: row r, 16-byte chunk k (tokens 8k..8k+7 of the tile) ----
        int rel[kWsCopyItems];  // elements from the tile's origin
        int soff[kWsCopyItems]; // bytes into a row tile
        int tok[kWsCopyItems];  // the chunk's first token
#pragma unroll
        for (int i = 0; i < kWsCopyItems; ++i)
        {
            int const e = threadIdx.x + i * kWsCopyThreads;
            int const r = e / kWsChunksPerRow;
            tok[i] = (e % kWsChunksPerRow) * 8;
            rel[i] = r * args.rowStride + tok[i];
            soff[i] = wsRowOffset(r) + tok[i] * 2;
        }
        StateSlab<T, 16, kWsCopyThreads> slabB, slabC;
        int stored = 0; // tiles (over both directions) whose y has been stored
        auto loadSlabs = [&](int g) { // B and C of tile g into registers
            int const di = g / numTiles;
            int const k = g - di * numTiles;
            ScanDirection const P = di == 0 ? args.dir[0] : args.dir[1];
            int const t0 = (P.reverse ? numTiles - 1 - k : k) * kTile;
            int const tValid = min(kTile, args.seqlen - t0);
            slabB.load(static_cast<T const*>(P.B), b * args.bcBatchStride[di][0], args.dstate, args.rowStride, t0, tValid);
            slabC.load(static_cast<T const*>(P.C), b * args.bcBatchStride[di][1], args.dstate, args.rowStride, t0, tValid);
        };
        auto tileOf = [&](int g, int& t0, int& tValid) {
            int const di = g / numTiles;
            int const k = g - di * numTiles;
            bool const reverse = di == 0 ? args.dir[0].reverse : args.dir[1].reverse;
            t0 = (reverse ? numTiles - 1 - k : k) * kTile;
            tValid = min(kTile, args.seqlen - t0);
        };
        // Wait until the scan warps are done with tiles [stored, upto), store their y; then the stages are free.
        auto retire = [&](int upto) {
            if (stored >= upto)
                return;
            for (; stored < upto; ++stored)
            {
                int const st = stored % kWsStages;
                mbarWait(&s.empty[st], (stored / kWsStages) & 1);
                int t0 = 0, tValid = 0;
                tileOf(stored, t0, tValid);
                T* const dst = out + outBase + t0;
#pragma unroll
                for (int i = 0; i < kWsCopyItems; ++i)
                {
                    int const r = (threadIdx.x + i * kWsCopyThreads) / kWsChunksPerRow;
                    if (r >= rowsValid || tok[i] >= tValid)
                        continue;
                    unsigned char const* const src = &s.u[st][soff[i]];
                    if (tok[i] + 8 <= tValid)
                    {
                        *reinterpret_cast<uint4*>(dst + rel[i]) = *reinterpret_cast<uint4 const*>(src);
                    }
                    else
                    {
                        for (int c = 0; c < tValid - tok[i]; ++c)
                        {
                            dst[rel[i] + c] = reinterpret_cast<T const*>(src)[c];
                        }
                    }
                }
            }
            // A thread refills exactly the u chunks whose y it has just stored (and read before), so only the
            // direction switch needs the copy threads to meet: the first direction's y, stored by all of them,
            // is read back as prev.
            if (stored == numTiles)
                barSync(kBarCopy, kWsCopyThreads);
        };
        for (int g = 0; g < total; ++g)
        {
            int const di = g / numTiles;
            // A stage is refilled once its previous tile is stored; the second direction's first tile reads
            // the first direction's output back (prev), so all of it must be stored first.
            retire(di > 0 && g == numTiles ? g : g - kWsStages + 1);
            ScanDirection const P = di == 0 ? args.dir[0] : args.dir[1];
            int const st = g % kWsStages;
            int t0 = 0, tValid = 0;
            tileOf(g, t0, tValid);
            int64_t const inBatch = static_cast<int64_t>(d0) * args.rowStride + t0;
            int64_t const origin[4] = {b * args.rowBatchStride[di][0] + inBatch, b * args.rowBatchStride[di][1] + inBatch,
                b * args.rowBatchStride[di][2] + inBatch, outBase + t0};
            int64_t const limit[4] = {rowExtentOf(args, args.rowBatchStride[di][0]) - origin[0],
                rowExtentOf(args, args.rowBatchStride[di][1]) - origin[1],
                rowExtentOf(args, args.rowBatchStride[di][2]) - origin[2], args.outExtent - origin[3]};
            T const* const src[4] = {static_cast<T const*>(P.u), static_cast<T const*>(P.delta),
                static_cast<T const*>(P.z), out};
            unsigned char* const dstStage[4] = {s.u[st], s.dt[st], s.z[st], s.prev[st]};
            unsigned const mask = 3u | (P.z != nullptr ? 4u : 0u) | (di > 0 ? 8u : 0u);
#pragma unroll
            for (int a = 0; a < 4; ++a)
            {
                if (!(mask & (1u << a)))
                    continue;
                T const* const tile = src[a] + origin[a];
                unsigned const base = static_cast<unsigned>(__cvta_generic_to_shared(dstStage[a]));
#pragma unroll
                for (int i = 0; i < kWsCopyItems; ++i)
                {
                    if (tok[i] >= tValid)
                        continue; // past a partial tile's tokens: never read
                    if (rel[i] + 8 <= limit[a])
                    {
                        cpAsync16(base + soff[i], tile + rel[i]);
                    }
                    else // the tensor ends inside the chunk: its elements, zeros after
                    {
                        T v[8];
#pragma unroll
                        for (int c = 0; c < 8; ++c)
                        {
                            v[c] = rel[i] + c < limit[a] ? tile[rel[i] + c] : fromFloat<T>(0.f);
                        }
                        *reinterpret_cast<uint4*>(dstStage[a] + soff[i]) = *reinterpret_cast<uint4 const*>(v);
                    }
                }
            }
            mbarArriveOnCopies(&s.full[st]);
            if (g == 0)
                loadSlabs(0);
            slabB.store(s.B[st]); // B / C of tile g, loaded into registers an iteration ago
            slabC.store(s.C[st]);
            mbarArrive(&s.full[st]);
            if (g + 1 < total)
                loadSlabs(g + 1);
        }
        retire(total);
        return;
    }

    // ---- scan warps: one channel a thread, its 16 states in registers ----
    int const row = threadIdx.x - kWsCopyThreads;
    int const d = d0 + row;
    bool const channelValid = row < rowsValid;
    for (int di = 0; di < args.numDirections; ++di)
    {
        ScanDirection const P = di == 0 ? args.dir[0] : args.dir[1];
        bool const reverse = P.reverse;
        bool const hasZ = P.z != nullptr;
        bool const hasPrev = di > 0;
        float A2[16];
#pragma unroll
        for (int i = 0; i < 16; ++i)
        {
            A2[i] = (channelValid && i < args.dstate) ? P.A[static_cast<int64_t>(d) * args.dstate + i] * kLog2e : 0.f;
        }
        float const bias = settle((channelValid && P.deltaBias) ? P.deltaBias[d] : 0.f);
        float const Dd = settle((channelValid && P.D) ? P.D[d] : 0.f);
        float const yScale = di == args.numDirections - 1 ? args.outScale : 1.f;
        float h[16];
#pragma unroll
        for (int i = 0; i < 16; ++i)
        {
            h[i] = 0.f;
        }
        for (int k = 0; k < numTiles; ++k)
        {
            int const st = (di * numTiles + k) % kWsStages;
            int const t0 = (reverse ? numTiles - 1 - k : k) * kTile;
            int const tValid = min(kTile, args.seqlen - t0);
            mbarWait(&s.full[st], ((di * numTiles + k) / kWsStages) & 1);
            T* const uRow = reinterpret_cast<T*>(&s.u[st][wsRowOffset(row)]);
            T const* const dtRow = reinterpret_cast<T const*>(&s.dt[st][wsRowOffset(row)]);
            T const* const zRow = reinterpret_cast<T const*>(&s.z[st][wsRowOffset(row)]);
            T const* const prevRow = reinterpret_cast<T const*>(&s.prev[st][wsRowOffset(row)]);
            float const(*const Bt)[16 + 4] = s.B[st];
            float const(*const Ct)[16 + 4] = s.C[st];

            auto loadToken = [&](int const c, auto mode) {
                return loadTokenIn<decltype(mode)::value, true>(uRow, dtRow, zRow, prevRow, c, bias, yScale,
                    args.deltaSoftplus, hasZ, hasPrev);
            };
            // The one-lane kernel's state update and y, operation for operation.
            auto scanY = [&](int const c, TokenIn const& t) {
                float acc4[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
                for (int q = 0; q < 4; ++q)
                {
                    float bv[4], cv[4];
                    loadStates4(&Bt[c][4 * q], bv);
                    loadStates4(&Ct[c][4 * q], cv);
#pragma unroll
                    for (int jj = 0; jj < 4; ++jj)
                    {
                        int const i = 4 * q + jj;
                        float const a = exp2f(t.dt * A2[i]);
                        h[i] = fmaf(a, h[i], t.du * bv[jj]);
                        acc4[jj] = fmaf(h[i], cv[jj], acc4[jj]);
                    }
                }
                float const acc = (acc4[0] + acc4[1]) + (acc4[2] + acc4[3]);
                return fromFloat<T>(fmaf(fmaf(Dd, t.uu, acc), t.gate, t.prev));
            };
            static_assert(kTile % 2 == 0, "whole token pairs in a full tile");
            // Full tiles move two tokens a shared-memory access: tokens 2q and 2q + 1 of every row tensor the mode
            // reads as one 32-bit word each, and their y as one word. That halves the 4-way bank conflicts of the
            // row layout (ncu, H200, vim_small batch 128: shared wavefronts 44.7 M -> 33.7 M) for 0.7-1.1% (same
            // run, batch 128 of Vim-T/S/B, 2026-12-01; the shared pipe was not the limit). The same bits as a
            // token at a time (commit 43ea9dc builds that with -DVIM_SCAN_WS_PAIRS=0).
            auto loadPair = [&](int const q, auto mode, TokenIn (&t)[2]) {
                constexpr int kMode = decltype(mode)::value;
                auto word = [q](T const* row) { return reinterpret_cast<unsigned const*>(row)[q]; };
                unsigned const uw = word(uRow), dw = word(dtRow);
                unsigned const zw = (kMode & 2) ? word(zRow) : 0u, pw = (kMode & 4) ? word(prevRow) : 0u;
#pragma unroll
                for (int k = 0; k < 2; ++k)
                {
                    t[k] = makeTokenIn<kMode, true>(
                        elementOf<T>(uw, k), elementOf<T>(dw, k), [&] { return elementOf<T>(zw, k); },
                        [&] { return elementOf<T>(pw, k); }, bias, yScale, args.deltaSoftplus, hasZ, hasPrev);
                }
            };
            auto fullTile = [&](auto mode) {
                constexpr bool kReverse = (decltype(mode)::value & 8) != 0;
                constexpr int kPairs = kTile / 2;
                auto pairAt = [](int p) { return kReverse ? kPairs - 1 - p : p; };
                TokenIn ahead[2];
                loadPair(pairAt(0), mode, ahead);
#pragma unroll 1
                for (int p = 0; p < kPairs; ++p)
                {
                    TokenIn const cur[2] = {ahead[0], ahead[1]};
                    int const q = pairAt(p);
                    loadPair(pairAt(min(p + 1, kPairs - 1)), mode, ahead); // past the end: unused reload
                    T y[2];
                    if (kReverse)
                    {
                        y[1] = scanY(2 * q + 1, cur[1]);
                        y[0] = scanY(2 * q, cur[0]);
                    }
                    else
                    {
                        y[0] = scanY(2 * q, cur[0]);
                        y[1] = scanY(2 * q + 1, cur[1]);
                    }
                    reinterpret_cast<unsigned*>(uRow)[q] = packPair(y[0], y[1]);
                }
            };
            if (tValid == kTile && args.deltaSoftplus && hasZ)
            {
                if (!reverse && !hasPrev)
                    fullTile(std::integral_constant<int, 1 | 2>{});
                else if (reverse && !hasPrev)
                    fullTile(std::integral_constant<int, 1 | 2 | 8>{});
                else if (!reverse)
                    fullTile(std::integral_constant<int, 1 | 2 | 4>{});
                else
                    fullTile(std::integral_constant<int, 1 | 2 | 4 | 8>{});
            }
            else
            {
                for (int jj = 0; jj < tValid; ++jj)
                {
                    int const c = reverse ? tValid - 1 - jj : jj;
                    uRow[c] = scanY(c, loadToken(c, std::integral_constant<int, kTokenFlagsAtRunTime>{}));
                }
            }
            mbarArrive(&s.empty[st]);
        }
    }
#else
    (void) args;
#endif
}

} // namespace
} // namespace vim
