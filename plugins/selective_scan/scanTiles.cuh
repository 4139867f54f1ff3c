/*
 * The selective scan's shared device machinery: launch constants, per-launch arguments (KernelArgs),
 * the shared-memory row tiles and their copy plans (Tiles, RowPlan), state slabs, and the per-token
 * input arithmetic both output kernels share (makeTokenIn). Private to selectiveScanKernel.cu, which
 * includes it once (anonymous namespace: one translation unit).
 */
#pragma once

#include "fmaExp2.cuh"
#include "rowLayout.cuh"
#include "scanTypes.cuh"
#include "selectiveScanKernel.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace vim
{
namespace
{

// Launch shape of the chunked kernel. Each value is the fastest measured (docs/benchmarks.md).
constexpr int kThreads = 64; // small blocks: more independent blocks per SM overlap their tile-load phases
constexpr int kTile = 16;    // tokens a tile
// Tokens unrolled in the full-tile loops: 2 keeps the fused kernel's forward and reverse loops inside the
// instruction cache (4 was 4-5% slower at batch 128, batch 1 and L = 6085; 1 slower than 2).
constexpr int kTokenUnroll = 2;
// Resident blocks a layout's registers are budgeted for: 6 x 64 threads an SM leaves 168 registers a thread
// (8 blocks spilled and ran 1.5x slower); at most 8 states a thread, 10 blocks (96 registers); 2 states a
// thread, 12 blocks (80 registers): more warps to hide latency, no spills.
constexpr int kMinBlocks = 384 / kThreads;
constexpr int kMinBlocksFewStates = 10;
constexpr int kMinBlocksTinyStates = 12;
// Longest chunk (tokens) the launcher gives the 2-lane layout at 512+ tokens (selectiveScanChooseChunks).
constexpr int kLongChunk = 512;
constexpr int kLookahead = 1; // tokens whose inputs are prepared ahead of the scan

__device__ __forceinline__ float softplus(float x)
{
    // log(1 + e^x) with fast intrinsics; log1p's series where e^x is small keeps the relative error low.
    // Branch-free (both sides computed, then selected) so that the token loop stays one basic block
    // and the compiler can overlap consecutive tokens.
    float const e = __expf(fminf(x, 20.f));
    float const series = e * (1.f - 0.5f * e);
    float const logged = __logf(1.f + e);
    return x > 20.f ? x : (e < 1e-3f ? series : logged);
}

/*
 * v, once its load has completed: a shuffle of the thread's own value, an instruction the compiler
 * keeps, reads it here. A value loaded from global memory before the tile loop and first used inside
 * it makes that use wait on the load's scoreboard, which by then also counts the next tile's
 * prefetched B / C loads: every tile stalled for a global-memory latency at its first token (ncu
 * source counters, H200, vim_small batch 128: 3.9% of the kernel's stall samples on one FADD of the
 * delta bias, 2026-12-01). Timed alone the change stayed inside the ~2% spread between runs; with the
 * branch-free y store it gave 1-2% (docs/benchmarks.md).
 */
__device__ __forceinline__ float settle(float v)
{
    return __shfl_sync(0xffffffffu, v, static_cast<int>(threadIdx.x & 31u));
}

//! Per-launch constants, passed by value.
struct KernelArgs
{
    int batch, dim, seqlen, dstate;
    int rowStride;  // elements between consecutive rows (channels / states) of every row tensor, >= seqlen
    int numChunks, chunkLen;
    int numDirections;
    bool deltaSoftplus;
    bool asyncCopy; // every (batch, dim, seqlen) pointer is 8-byte aligned: tiles arrive by cp.async
    int64_t outBatchStride; // elements between batches of out (resolved)
    int64_t outExtent;      // elements from out to the end of its last row (rowExtent)
    int64_t rowBatchStride[2][3]; // per direction: u, delta, z batch strides (elements, resolved)
    int64_t bcBatchStride[2][2];  // per direction: B, C batch strides
    float outScale;
    ScanDirection dir[2];
    void* out;
    float* hEnd;   // [dir][batch][dim][chunk][dstate]
    float* sumDt;  // [dir][batch][dim][chunk]
};

/*
 * Elements from a row tensor's start to the end of its last row, given its batch stride. A batch-major
 * layout (batch stride >= dim * rowStride) gives each row rowStride elements; a channel-major one
 * (rows, batch, tokens) gives each row batchStride elements, and its buffer ends there (rowLayout.cuh).
 */
__host__ __device__ inline int64_t rowExtentOf(KernelArgs const& a, int64_t batchStride)
{
    int64_t const slot = batchStride < a.rowStride ? batchStride : a.rowStride;
    return (a.batch - 1) * batchStride + static_cast<int64_t>(a.dim - 1) * a.rowStride + slot;
}

/*
 * Shared memory of one block.
 *
 * Row tiles (u, delta, z, the forward output read back by the reverse direction) are kept in their
 * element type as copied from global memory: row r holds the 8-byte granules that cover its kTile
 * tokens, so its first token sits `shift` elements into the row (the token's element index modulo
 * the elements per granule; the same for every tile of a row, since tiles start kTile apart). The
 * output y overwrites u in place (each thread writes the token it just read) and leaves through a
 * coalesced store after the tile; u therefore has three stages (the tile being computed, the next
 * one arriving, the previous one being stored), the other rows two.
 * B and C are converted to fp32, token-major, so that a thread reads its states as float4 vectors
 * (the same address for the whole warp: a broadcast; 16-bit tiles halve the shared-memory bytes but
 * add a conversion per state read, and measured no faster).
 */
template <typename T, int kSPT, int kLPC>
struct Tiles
{
    static constexpr int kRows = kThreads / kLPC;
    static constexpr int kMaxN = kSPT * kLPC;
    static constexpr int kElemsPerGranule = 8 / static_cast<int>(sizeof(T));
    static constexpr int kGranules = kTile / kElemsPerGranule + 1;
    static constexpr int kStride = 2 * kGranules; // words per row
    using BCElem = float; //!< element type of the B / C tiles
    // 16-byte aligned rows plus 16 bytes: fewer bank conflicts on the stores.
    static constexpr int kBCStride = kMaxN + 16 / static_cast<int>(sizeof(BCElem));
    static_assert(kTile % kElemsPerGranule == 0, "tiles must start on granule-congruent elements");
    alignas(16) uint32_t u[3][kRows][kStride];
    alignas(16) uint32_t dt[2][kRows][kStride];
    alignas(16) uint32_t z[2][kRows][kStride];
    alignas(16) uint32_t prev[2][kRows][kStride];
    alignas(16) BCElem B[2][kTile][kBCStride];
    alignas(16) BCElem C[2][kTile][kBCStride];
};

/*
 * cp.async needs sm_80: before it (Xavier's sm_72, sm_75) the granule is copied synchronously (the
 * same bytes land; only the overlap with the tile being computed is lost).
 */
__device__ __forceinline__ void cpAsync8(unsigned smemAddr, void const* gmem, int srcBytes)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    uint32_t w[2] = {0u, 0u};
    if (srcBytes >= 8)
    {
        uint2 const v = *static_cast<uint2 const*>(gmem);
        w[0] = v.x;
        w[1] = v.y;
    }
    else
    {
        memcpy(w, gmem, srcBytes > 0 ? srcBytes : 0);
    }
    asm volatile("st.shared.v2.u32 [%0], {%1, %2};\n" ::"r"(smemAddr), "r"(w[0]), "r"(w[1]) : "memory");
#else
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(smemAddr), "l"(gmem), "r"(srcBytes) : "memory");
#endif
}

/*
 * A tensor's last, partial granule (0 < valid < the elements per granule) and granules wholly past its
 * end (valid <= 0), written to shared memory directly: the valid elements by plain loads, zeros after.
 * A cp.async of fewer source bytes than its size would read no more either, but compute-sanitizer
 * counts the whole 8 bytes against the allocation (H200, 2026-12-01), so nothing past a tensor's end
 * is even addressed.
 */
template <typename T>
__device__ __forceinline__ void storeGranuleTail(unsigned smemAddr, T const* gmem, int valid)
{
    constexpr int kE = 8 / static_cast<int>(sizeof(T));
    union
    {
        T e[kE];
        uint32_t w[2];
    } g;
#pragma unroll
    for (int k = 0; k < kE; ++k)
    {
        g.e[k] = k < valid ? gmem[k] : fromFloat<T>(0.f);
    }
    asm volatile("st.shared.v2.u32 [%0], {%1, %2};\n" ::"r"(smemAddr), "r"(g.w[0]), "r"(g.w[1]) : "memory");
}

__device__ __forceinline__ void cpAsyncCommit()
{
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void cpAsyncWaitAll()
{
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#endif
}

/*
 * One thread's share of moving row tiles, planned once per direction: which 8-byte granules it
 * copies in (element offsets relative to the tile's origin, the first token of the block's first
 * row) and which elements of y it stores out. Tiles of a direction start kTile tokens apart, so
 * the plan holds for all of them; a tile adds only its origin.
 */
template <typename T, int kRows, int kStride, int kNT = kThreads>
struct RowPlan
{
    static constexpr int kE = 8 / static_cast<int>(sizeof(T));
    static constexpr int kGranules = kTile / kE + 1;
    static constexpr int kCopyItems = (kRows * kGranules + kNT - 1) / kNT;
    static constexpr int kRowsPerStore = kNT / kTile;
    static constexpr int kStoreItems = (kRows + kRowsPerStore - 1) / kRowsPerStore;

    int copyRel[kCopyItems]; // element offset of the granule from the tile origin
    int copySmem[kCopyItems]; // byte offset of the granule in a row tile; -1: no item
    int storeRel0;           // element offset of this thread's first stored element
    int storeSmem0;          // byte offset of that element's row in a row tile, + its column
    int originPhase;         // tile origin modulo kE (the same for every tile of the direction)

    __device__ __forceinline__ void init(int64_t origin, int rowStride)
    {
        originPhase = static_cast<int>(origin & (kE - 1));
#pragma unroll
        for (int i = 0; i < kCopyItems; ++i)
        {
            int const e = threadIdx.x + i * kNT;
            int const r = e / kGranules;
            int const k = e % kGranules;
            int const shift = (originPhase + r * rowStride) & (kE - 1); // r * rowStride < 2^31: rows of one block
            copyRel[i] = r * rowStride - shift + k * kE;
            copySmem[i] = e < kRows * kGranules ? (r * kStride + 2 * k) * 4 : -1;
        }
        int const c = threadIdx.x % kTile;
        int const r0 = threadIdx.x / kTile;
        storeRel0 = r0 * rowStride + c;
        storeSmem0 = r0 * kStride * 4 + c * static_cast<int>(sizeof(T));
    }

    //! Element shift of row r (its first token's position inside its first granule).
    __device__ __forceinline__ int shiftOf(int r, int rowStride) const
    {
        return (originPhase + r * rowStride) & (kE - 1);
    }

    /*
     * Issue the copies of one tile for the tensors selected by `mask` (u, delta, z, prev). `limit`:
     * elements from the tile origin to the end of the tensors; granules reaching past it are cut
     * (storeGranuleTail: the valid elements, zeros after), so nothing beyond a tensor is read.
     */
    __device__ __forceinline__ void copyAsync(unsigned mask, unsigned const (&dstStage)[4], T const* const (&src)[4],
        int64_t const (&origin)[4], int64_t const (&limit)[4], int rowStride) const
    {
        T const* tile[4];
        bool inside = true; // every granule of every tensor inside its extent
#pragma unroll
        for (int a = 0; a < 4; ++a)
        {
            tile[a] = src[a] + origin[a];
            if (mask & (1u << a))
            {
                inside = inside && limit[a] >= static_cast<int64_t>(kRows) * rowStride + kTile + kE;
            }
        }
        if (inside)
        {
#pragma unroll
            for (int i = 0; i < kCopyItems; ++i)
            {
#pragma unroll
                for (int a = 0; a < 4; ++a)
                {
                    if ((mask & (1u << a)) && copySmem[i] >= 0)
                    {
                        cpAsync8(dstStage[a] + copySmem[i], tile[a] + copyRel[i], 8);
                    }
                }
            }
            return;
        }
#pragma unroll
        for (int i = 0; i < kCopyItems; ++i)
        {
            if (copySmem[i] < 0)
                continue;
#pragma unroll
            for (int a = 0; a < 4; ++a)
            {
                if (mask & (1u << a))
                {
                    int64_t const left = limit[a] - copyRel[i];
                    if (left >= kE)
                    {
                        cpAsync8(dstStage[a] + copySmem[i], tile[a] + copyRel[i], 8);
                    }
                    else
                    {
                        storeGranuleTail(dstStage[a] + copySmem[i], tile[a] + copyRel[i], static_cast<int>(left));
                    }
                }
            }
        }
    }

    //! Element-by-element fallback of copyAsync (a tensor not 8-byte aligned), same layout.
    __device__ __forceinline__ void copySync(unsigned mask, uint32_t (*const (&dst)[4])[kStride],
        T const* const (&src)[4], int64_t const (&origin)[4], int64_t const (&limit)[4], int rowStride) const
    {
#pragma unroll
        for (int a = 0; a < 4; ++a)
        {
            if (!(mask & (1u << a)))
                continue;
            for (int e = threadIdx.x; e < kRows * kTile; e += kNT)
            {
                int const r = e / kTile;
                int const c = e % kTile;
                int64_t const rel = static_cast<int64_t>(r) * rowStride + c;
                T const v = rel < limit[a] ? src[a][origin[a] + rel] : fromFloat<T>(0.f);
                reinterpret_cast<T*>(&dst[a][r][0])[shiftOf(r, rowStride) + c] = v;
            }
        }
    }

    //! Coalesced store of y (kept in u's row tile) for rows < rowsValid and columns < tValid.
    __device__ __forceinline__ void store(T* out, uint32_t const (*src)[kStride], int64_t origin, int rowsValid,
        int tValid, int rowStride) const
    {
        static_assert(kRows % kRowsPerStore == 0, "store items cover whole row groups");
        int const c = threadIdx.x % kTile;
        int const r0 = threadIdx.x / kTile;
        if (c >= tValid)
            return;
        T* const dst = out + origin;
        char const* const sbase = reinterpret_cast<char const*>(&src[0][0]) + storeSmem0;
        auto item = [&](int i) {
            int const rel = storeRel0 + i * kRowsPerStore * rowStride;
            int const shift = (originPhase + rel - c) & (kE - 1);
            dst[rel] = *reinterpret_cast<T const*>(sbase + i * kRowsPerStore * kStride * 4 + shift * sizeof(T));
        };
        if (rowsValid == kRows)
        {
            // Every row valid (all blocks but a partial last one): no per-item branch, so the compiler
            // overlaps the items' load -> store chains (with a branch each they ran one after another:
            // ncu, H200, vim_small batch 128: the store was 14% of the kernel's stall samples, 30% of
            // them fixed-latency waits).
#pragma unroll
            for (int i = 0; i < kStoreItems; ++i)
            {
                item(i);
            }
            return;
        }
#pragma unroll
        for (int i = 0; i < kStoreItems; ++i)
        {
            if (r0 + i * kRowsPerStore < rowsValid)
            {
                item(i);
            }
        }
    }
};

//! A B / C value as its tile keeps it: the same type (no conversion) or fp32.
template <typename E, typename T>
__device__ __forceinline__ E asTileElem(T v)
{
    if constexpr (std::is_same<E, T>::value)
        return v;
    else
        return toFloat(v);
}

//! Four consecutive states of a B / C tile row as fp32 (one 16-byte or 8-byte shared-memory load).
__device__ __forceinline__ void loadStates4(float const* p, float (&v)[4])
{
    float4 const q = *reinterpret_cast<float4 const*>(p);
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
}

template <typename T>
__device__ __forceinline__ void loadStates4(T const* p, float (&v)[4])
{
    static_assert(sizeof(T) == 2, "16-bit tiles");
    uint2 const q = *reinterpret_cast<uint2 const*>(p);
    T lo[2], hi[2];
    memcpy(lo, &q.x, 4);
    memcpy(hi, &q.y, 4);
    v[0] = toFloat(lo[0]);
    v[1] = toFloat(lo[1]);
    v[2] = toFloat(hi[0]);
    v[3] = toFloat(hi[1]);
}

//! kG (1, 2 or 4) consecutive states of a B / C tile row as fp32.
template <int kG, typename E>
__device__ __forceinline__ void loadStates(E const* p, float (&v)[kG])
{
    if constexpr (kG == 4)
    {
        loadStates4(p, v);
    }
    else if constexpr (kG == 2 && std::is_same<E, float>::value)
    {
        float2 const q = *reinterpret_cast<float2 const*>(p);
        v[0] = q.x;
        v[1] = q.y;
    }
    else
    {
#pragma unroll
        for (int i = 0; i < kG; ++i)
        {
            v[i] = toFloat(p[i]);
        }
    }
}

//! Registers holding one thread's share of a (dstate x tile) slab of B or C, loaded a tile ahead.
template <typename T, int kMaxN, int kNT = kThreads>
struct StateSlab
{
    static constexpr int kPer = (kMaxN * kTile + kNT - 1) / kNT;
    T v[kPer > 8 ? 1 : kPer]; // unused (size 1) when the slab is loaded directly

    __device__ __forceinline__ void load(T const* src, int64_t batchOffset, int dstate, int rowStride, int t0, int tValid)
    {
#pragma unroll
        for (int i = 0; i < kPer; ++i)
        {
            int const e = threadIdx.x + i * kNT;
            int const n = e / kTile;
            int const c = e % kTile;
            v[i] = (n < dstate && n < kMaxN && c < tValid)
                ? src[batchOffset + static_cast<int64_t>(n) * rowStride + t0 + c]
                : fromFloat<T>(0.f);
        }
    }

    template <typename E, int kBCStride>
    __device__ __forceinline__ void store(E (*dst)[kBCStride]) const
    {
#pragma unroll
        for (int i = 0; i < kPer; ++i)
        {
            int const e = threadIdx.x + i * kNT;
            int const n = e / kTile;
            int const c = e % kTile;
            if (n < kMaxN)
            {
                dst[c][n] = asTileElem<E>(v[i]);
            }
        }
    }
};

//! Synchronous load of a (dstate x tile) slab of B or C into its token-major tile (fp32 or 16-bit).
template <typename T, int kMaxN, typename E, int kBCStride>
__device__ __forceinline__ void loadStatesDirect(E (*dst)[kBCStride], T const* src, int64_t batchOffset, int dstate,
    int rowStride, int t0, int tValid)
{
    for (int e = threadIdx.x; e < kMaxN * kTile; e += kThreads)
    {
        int const n = e / kTile;
        int const c = e % kTile;
        dst[c][n] = asTileElem<E>((n < dstate && c < tValid)
                ? src[batchOffset + static_cast<int64_t>(n) * rowStride + t0 + c]
                : fromFloat<T>(0.f));
    }
}

//! One token's element-wise inputs: softplus(delta + bias), delta * u, u, the SiLU gate, the previous direction's output.
struct TokenIn
{
    float dt, du, uu, gate, prev;
};

//! kMode bit of loadTokenIn: read the softplus / gate / previous-direction flags at run time (rare
//! configurations, partial tiles) instead of from bits 0-2.
constexpr int kTokenFlagsAtRunTime = 16;

/*
 * One token's TokenIn (the arithmetic both output kernels share): u and delta as floats; readZ() and
 * readPrev() return z and the previous direction's output, called only where kMode uses them. kMode: bit 0
 * softplus, bit 1 gating by z, bit 2 adding the previous direction's output (scaled), or
 * kTokenFlagsAtRunTime; kOutputPass false (pass A) never reads z or prev.
 */
template <int kMode, bool kOutputPass, typename ReadZ, typename ReadPrev>
__device__ __forceinline__ TokenIn makeTokenIn(float u, float dt, ReadZ&& readZ, ReadPrev&& readPrev, float bias,
    float yScale, bool deltaSoftplus, bool hasZ, bool hasPrev)
{
    constexpr bool kRuntime = (kMode & kTokenFlagsAtRunTime) != 0;
    bool const doSoftplus = kRuntime ? deltaSoftplus : (kMode & 1) != 0;
    bool const doZ = kRuntime ? hasZ : (kMode & 2) != 0;
    bool const doPrev = kRuntime ? hasPrev : (kMode & 4) != 0;
    TokenIn t;
    t.uu = u;
    t.dt = dt + bias;
    if (doSoftplus)
    {
        t.dt = softplus(t.dt);
    }
    t.du = t.dt * t.uu;
    t.gate = yScale;
    t.prev = 0.f;
    if (kOutputPass && doZ)
    {
        float const zz = readZ();
        t.gate = yScale * zz / (1.f + __expf(-zz));
    }
    if (kOutputPass && doPrev)
    {
        t.prev = yScale * readPrev();
    }
    return t;
}

//! Token c's inputs from its rows of a shared-memory tile.
template <int kMode, bool kOutputPass, typename T>
__device__ __forceinline__ TokenIn loadTokenIn(T const* uRow, T const* dtRow, T const* zRow, T const* prevRow, int c,
    float bias, float yScale, bool deltaSoftplus, bool hasZ, bool hasPrev)
{
    return makeTokenIn<kMode, kOutputPass>(
        toFloat(uRow[c]), toFloat(dtRow[c]), [&] { return toFloat(zRow[c]); }, [&] { return toFloat(prevRow[c]); },
        bias, yScale, deltaSoftplus, hasZ, hasPrev);
}

} // namespace
} // namespace vim
