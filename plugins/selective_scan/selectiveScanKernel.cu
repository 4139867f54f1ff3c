/*
 * Selective scan forward: the CUDA kernels behind selectiveScanKernel.h.
 *
 * Work decomposition. A thread owns kSPT states of one (batch, channel) and walks the tokens of one
 * sequence chunk sequentially with its states in registers; kLPC lanes share a channel when dstate
 * exceeds 16, or when few channels are in flight (their partial <C, h> sums meet through warp
 * shuffles). A block holds kThreads (64) threads, i.e. kThreads / kLPC channels of one batch. With 2 or
 * 4 lanes, full tiles split the per-token work (softplus, gate, y) by token among the lanes
 * (fullTileSplit) instead of repeating it in each.
 * Token tiles of kTile tokens flow through a software pipeline (see Tiles and RowPlan): the next
 * tile's rows arrive by cp.async and its B/C in registers while this tile is computed; y leaves by
 * a coalesced store. Global traffic is one read of every input and one write of the output.
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
#include "fmaExp2.cuh"
#include "rowLayout.cuh"
#include "scanTypes.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

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
// Tokens unrolled in the full-tile loops. 2: the one-lane output kernel is 6064 instructions instead of
// 7792 (the fused kernel's forward and reverse loops and their peeled copies compete for the instruction
// cache: 7% of its stall samples were "no instruction"); 2026-12-01, H200, 4 rounds in balanced order:
// 4-5% faster than 4 at batch 128, batch 1 and L = 6085; 1 is slower than 2 (bench/RESULTS.md).
#define VIM_SCAN_TOKEN_UNROLL 2
#endif
#ifndef VIM_SCAN_MIN_BLOCKS
// 6 x 64 threads per SM leaves 168 registers a thread: no spills (8 blocks capped at 128 and spilled,
// 1.5x slower on the H100, bench/RESULTS.md).
#define VIM_SCAN_MIN_BLOCKS (384 / VIM_SCAN_THREADS)
#endif
#ifndef VIM_SCAN_MIN_BLOCKS_FEW_STATES
// Layouts of at most 8 states a thread (a channel split over lanes) need fewer registers: 10 blocks
// (96 registers, no spills in the output pass) give them 20 warps an SM to hide latency with
// (2026-12-01, H200: vim_small batch 1 22.4 us vs 22.6 with 8 blocks; bench/RESULTS.md).
#define VIM_SCAN_MIN_BLOCKS_FEW_STATES 10
#endif
#ifndef VIM_SCAN_MIN_BLOCKS_TINY_STATES
// The layout of 2 states a thread (a channel of <= 16 states over 8 lanes): 12 blocks (80 registers, no
// spills in the output pass), 24 warps an SM.
#define VIM_SCAN_MIN_BLOCKS_TINY_STATES 12
#endif
#ifndef VIM_SCAN_BC_NATIVE
// 1: B and C tiles stay in shared memory in the model's 16-bit type (converted to fp32 as they are read)
// instead of fp32: half the shared-memory bytes a token reads, one conversion more a state (issue 11;
// 2026-12-01, H200: the same speed, L1 busy 67% -> 56% and 16% more instructions; bench/RESULTS.md).
#define VIM_SCAN_BC_NATIVE 0
#endif
#ifndef VIM_SCAN_SPLIT_TOKENS
// 1: when 2 or 4 lanes share a channel, full tiles split the per-token work (softplus, SiLU gate,
// loads, y) by token among the lanes instead of repeating it in every lane (issue 11; 2026-12-01,
// H200: vim_small batch 1 30.7 -> 22.4 us). 0: the earlier kernel, every lane repeats it.
#define VIM_SCAN_SPLIT_TOKENS 1
#endif
#ifndef VIM_SCAN_LONG_CHUNK
// Longest chunk (tokens) the launcher gives the 2-lane layout at 512+ tokens (selectiveScanChooseChunks).
#define VIM_SCAN_LONG_CHUNK 512
#endif
constexpr int kThreads = VIM_SCAN_THREADS;
constexpr int kTile = VIM_SCAN_TILE;
constexpr int kTokenUnroll = VIM_SCAN_TOKEN_UNROLL;
#ifndef VIM_SCAN_LOOKAHEAD
#define VIM_SCAN_LOOKAHEAD 1
#endif
constexpr int kLookahead = VIM_SCAN_LOOKAHEAD; // tokens whose inputs are prepared ahead of the scan
#ifndef VIM_SCAN_FMA_EXP_PER4
// Of every 4 states a thread updates, how many take their decay 2^(dt * A * log2 e) from the FMA pipe
// (fmaExp2.cuh) instead of the MUFU: an experiment of issue 11 (tools/build_kernel_variants.sh), 0 = off.
#define VIM_SCAN_FMA_EXP_PER4 0
#endif
constexpr int kFmaExpPer4 = VIM_SCAN_FMA_EXP_PER4;
static_assert(kFmaExpPer4 >= 0 && kFmaExpPer4 <= 4, "VIM_SCAN_FMA_EXP_PER4 must be 0..4");

#ifndef VIM_SCAN_FMA_SOFTPLUS
// 1: softplus on the FMA pipe (fmaSoftplus, fmaExp2.cuh) instead of MUFU ex2 + lg2; an experiment of
// issue 11 (tools/build_kernel_variants.sh), 0 = off.
#define VIM_SCAN_FMA_SOFTPLUS 0
#endif

__device__ __forceinline__ float softplus(float x)
{
#if VIM_SCAN_FMA_SOFTPLUS
    return fmaSoftplus(x);
#endif
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
 * branch-free y store it gave 1-2% (bench/RESULTS.md).
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
 * (the same address for the whole warp: a broadcast). With VIM_SCAN_BC_NATIVE they stay 16-bit (half
 * the shared-memory bytes, a conversion per state read; measured no faster, off by default).
 */
template <typename T, int kSPT, int kLPC>
struct Tiles
{
    static constexpr int kRows = kThreads / kLPC;
    static constexpr int kMaxN = kSPT * kLPC;
    static constexpr int kElemsPerGranule = 8 / static_cast<int>(sizeof(T));
    static constexpr int kGranules = kTile / kElemsPerGranule + 1;
    static constexpr int kStride = 2 * kGranules; // words per row
    //! Element type of the B / C tiles: fp32, or the model's 16-bit type with VIM_SCAN_BC_NATIVE.
    using BCElem = std::conditional_t<VIM_SCAN_BC_NATIVE && !std::is_same<T, float>::value, T, float>;
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

/*
 * kOutputPass == false: pass A (chunk end states + summed delta), one direction per blockIdx.z.
 * kOutputPass == true:  pass B (outputs), every direction of the call, in order.
 *
 * Software pipeline per tile j: the copies of tile j + 1 are issued (cp.async for the rows, loads
 * into registers for B/C), tile j is computed from shared memory, then the block waits for tile
 * j + 1, converts its B/C, synchronizes once and stores tile j's output.
 */
//! Resident blocks a layout's register budget is compiled for (launch bounds).
constexpr int minBlocksFor(int spt)
{
    return spt >= 16 ? VIM_SCAN_MIN_BLOCKS : (spt >= 4 ? VIM_SCAN_MIN_BLOCKS_FEW_STATES : VIM_SCAN_MIN_BLOCKS_TINY_STATES);
}

//! One level of reduceScatterLanes: lanes o apart swap halves of v and add.
template <int kN>
__device__ __forceinline__ void reduceScatterStep(float (&v)[kN], int lane, int o)
{
    bool const upper = (lane & o) != 0;
#pragma unroll
    for (int k = 0; k < 2 * o; ++k)
    {
        if (k & o)
            continue;
        float const keep = upper ? v[k | o] : v[k];
        float const send = upper ? v[k] : v[k | o];
        v[k] = keep + __shfl_xor_sync(0xffffffffu, send, o, kN);
    }
}

//! Levels kO, kO / 2, ..., 1, each with its level as a compile-time constant.
template <int kN, int kO>
__device__ __forceinline__ void reduceScatterLevels(float (&v)[kN], int lane)
{
    reduceScatterStep<kN>(v, lane, kO);
    if constexpr (kO > 1)
    {
        reduceScatterLevels<kN, kO / 2>(v, lane);
    }
}

/*
 * Reduce-scatter over the kN lanes of a channel: lane l returns the sum over the kN lanes of their
 * v[l] (v[k]: a lane's partial <C, h> of token k of a group). kN - 1 shuffles; v is clobbered.
 */
template <int kN>
__device__ __forceinline__ float reduceScatterLanes(float (&v)[kN], int lane)
{
    if constexpr (kN >= 8)
    {
        // With the level as a loop variable the compiler left the 8-lane form rolled, indexed v at run
        // time and moved it to local memory.
        reduceScatterLevels<kN, kN / 2>(v, lane);
    }
    else
    {
        // 2 and 4 lanes keep the loop over levels (kernel v15): the compile-time levels change how the
        // compiler unrolls the enclosing token loops (13-25% more instructions there).
#pragma unroll
        for (int o = kN / 2; o >= 1; o /= 2)
        {
            reduceScatterStep<kN>(v, lane, o);
        }
    }
    return v[0];
}

template <typename T, int kSPT, int kLPC, bool kOutputPass>
__global__ void __launch_bounds__(kThreads, minBlocksFor(kSPT)) selectiveScanKernel(KernelArgs const args)
{
    using Smem = Tiles<T, kSPT, kLPC>;
    constexpr int kRows = Smem::kRows;
    constexpr int kMaxN = Smem::kMaxN;
    constexpr int kStride = Smem::kStride;
    using Plan = RowPlan<T, kRows, kStride>;
    // B/C of the next tile wait in registers when that is a few per thread (dstate <= 32).
    constexpr bool kPrefetchStates = StateSlab<T, kMaxN>::kPer <= 8;
    // 2 states a thread (8 lanes) always split: every lane repeating the per-token work would cost
    // more than its states.
    constexpr bool kSplitTokens = (VIM_SCAN_SPLIT_TOKENS && (kLPC == 2 || kLPC == 4)) || kSPT < 4;
    extern __shared__ __align__(16) unsigned char smemRaw[];
    Smem& s = *reinterpret_cast<Smem*>(smemRaw);

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
    int64_t const outBase = b * args.outBatchStride + static_cast<int64_t>(d0) * args.rowStride; // block's first row
    T* out = static_cast<T*>(args.out);

    for (int di = dirFirst; di < dirLast; ++di)
    {
        ScanDirection const P = di == 0 ? args.dir[0] : args.dir[1];
        bool const reverse = P.reverse;
        if (!kOutputPass && chunk == (reverse ? 0 : args.numChunks - 1))
        {
            continue; // the last chunk scanned in this direction carries into none: no pass A for it
        }
        bool const hasZ = kOutputPass && P.z != nullptr;
        int64_t const rowStride[3] = {args.rowBatchStride[di][0], args.rowBatchStride[di][1], args.rowBatchStride[di][2]};
        int64_t const bcStride[2] = {args.bcBatchStride[di][0], args.bcBatchStride[di][1]};
        int64_t const rowExtent[3] = {rowExtentOf(args, rowStride[0]), rowExtentOf(args, rowStride[1]),
            rowExtentOf(args, rowStride[2])};
        bool const hasPrev = kOutputPass && di > 0;
        // Per-thread constants: A pre-scaled by log2(e) so that exp(dt*A) = exp2(dt*A2).
        float A2[kSPT];
#pragma unroll
        for (int i = 0; i < kSPT; ++i)
        {
            int const n = lane * kSPT + i;
            A2[i] = (channelValid && n < args.dstate) ? P.A[static_cast<int64_t>(d) * args.dstate + n] * kLog2e : 0.f;
        }
        // Settled: bias and D are used in every token, and their first use inside a tile would otherwise
        // wait for the next tile's B / C prefetch as well (settle()).
        float const bias = settle((channelValid && P.deltaBias) ? P.deltaBias[d] : 0.f);
        float const Dd = settle((channelValid && P.D) ? P.D[d] : 0.f);
        float const yScale = di == args.numDirections - 1 ? args.outScale : 1.f;

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

        auto tileStart = [&](int j) { return c0 + (reverse ? numTiles - 1 - j : j) * kTile; };
        // Issue the copies of tile j into stage j (rows) and the B/C registers.
        StateSlab<T, kMaxN> slabB, slabC;
        Plan plan;
        plan.init(outBase + tileStart(0), args.rowStride);
        auto issue = [&](int j) {
            int const t0 = tileStart(j);
            int const tValid = min(kTile, c1 - t0);
            int64_t const inBatch = static_cast<int64_t>(d0) * args.rowStride + t0;
            int64_t const origin[4] = {b * rowStride[0] + inBatch, b * rowStride[1] + inBatch,
                b * rowStride[2] + inBatch, outBase + t0};
            int64_t const limit[4] = {rowExtent[0] - origin[0], rowExtent[1] - origin[1], rowExtent[2] - origin[2],
                args.outExtent - origin[3]};
            T const* const src[4] = {static_cast<T const*>(P.u), static_cast<T const*>(P.delta),
                static_cast<T const*>(P.z), out};
            unsigned const mask = 3u | (hasZ ? 4u : 0u) | (hasPrev ? 8u : 0u);
            if (args.asyncCopy)
            {
                unsigned const dstStage[4] = {static_cast<unsigned>(__cvta_generic_to_shared(&s.u[j % 3][0][0])),
                    static_cast<unsigned>(__cvta_generic_to_shared(&s.dt[j & 1][0][0])),
                    static_cast<unsigned>(__cvta_generic_to_shared(&s.z[j & 1][0][0])),
                    static_cast<unsigned>(__cvta_generic_to_shared(&s.prev[j & 1][0][0]))};
                plan.copyAsync(mask, dstStage, src, origin, limit, args.rowStride);
            }
            else
            {
                uint32_t(*const dst[4])[kStride] = {s.u[j % 3], s.dt[j & 1], s.z[j & 1], s.prev[j & 1]};
                plan.copySync(mask, dst, src, origin, limit, args.rowStride);
            }
            cpAsyncCommit();
            if (kPrefetchStates)
            {
                slabB.load(static_cast<T const*>(P.B), b * bcStride[0], args.dstate, args.rowStride, t0, tValid);
                if (kOutputPass)
                {
                    slabC.load(static_cast<T const*>(P.C), b * bcStride[1], args.dstate, args.rowStride, t0, tValid);
                }
            }
        };
        auto land = [&](int j) {
            if (!kPrefetchStates) // large dstate: B/C loaded now, a chunk at a time, not held across the tile
            {
                int const t0 = tileStart(j);
                int const tValid = min(kTile, c1 - t0);
                loadStatesDirect<T, kMaxN, typename Smem::BCElem, Smem::kBCStride>(s.B[j & 1], static_cast<T const*>(P.B), b * bcStride[0], args.dstate,
                    args.rowStride, t0, tValid);
                if (kOutputPass)
                {
                    loadStatesDirect<T, kMaxN, typename Smem::BCElem, Smem::kBCStride>(s.C[j & 1], static_cast<T const*>(P.C),
                        b * bcStride[1], args.dstate, args.rowStride, t0, tValid);
                }
            }
            cpAsyncWaitAll();
            if (kPrefetchStates)
            {
                slabB.store(s.B[j & 1]);
                if (kOutputPass)
                {
                    slabC.store(s.C[j & 1]);
                }
            }
        };

        __syncthreads(); // the previous direction's output stores are visible; its tiles are free
        if (numTiles > 0)
        {
            issue(0);
            land(0);
        }
        __syncthreads();

        float sumDt = 0.f;
        for (int j = 0; j < numTiles; ++j)
        {
            int const t0 = tileStart(j);
            int const tValid = min(kTile, c1 - t0);
            if (j + 1 < numTiles)
            {
                issue(j + 1);
            }
            int const shift = plan.shiftOf(row, args.rowStride);
            T* const uRow = reinterpret_cast<T*>(&s.u[j % 3][row][0]) + shift;
            T const* const dtRow = reinterpret_cast<T const*>(&s.dt[j & 1][row][0]) + shift;
            T const* const zRow = reinterpret_cast<T const*>(&s.z[j & 1][row][0]) + shift;
            T const* const prevRow = reinterpret_cast<T const*>(&s.prev[j & 1][row][0]) + shift;
            using BCElem = typename Smem::BCElem;
            BCElem const(*const Bt)[Smem::kBCStride] = s.B[j & 1];
            BCElem const(*const Ct)[Smem::kBCStride] = s.C[j & 1];

            /*
             * One token = its element-wise inputs (a TokenIn: softplus(delta), delta * u, u, the SiLU
             * gate, the previous direction's output) and the state update that consumes them. kMode
             * selects a specialised copy: bit 0 softplus, bit 1 gating by z, bit 2 adding the previous
             * direction's output, bit 3 reverse; kGeneric reads those flags at run time instead (rare
             * configurations, partial tiles).
             *
             * Full tiles are software-pipelined: token c + kLookahead's inputs are loaded and their
             * softplus / SiLU computed while token c's exps run. Each of those is a chain of two
             * dependent MUFU operations; left inside the token (load, softplus, exps, gate, store) they
             * serialise the token behind the exp unit's queue twice, and the compiler cannot move
             * the next token's shared-memory loads above this token's store of y on its own.
             */
            constexpr int kGeneric = kTokenFlagsAtRunTime;
            auto loadToken = [&](int const c, auto mode) {
                return loadTokenIn<decltype(mode)::value, kOutputPass>(uRow, dtRow, zRow, prevRow, c, bias, yScale,
                    args.deltaSoftplus, hasZ, hasPrev);
            };
            /*
             * This lane's states advanced over token c (h = exp2(dt * A2) * h + du * B[c]); returns the
             * lane's share of <C[c], h> (pass B) and, in pass A, adds dt to the chunk's summed delta.
             */
            auto advanceStates = [&](int const c, float const dt, float const du) {
                if (!kOutputPass)
                {
                    sumDt += dt;
                }
                constexpr int kG = kSPT < 4 ? kSPT : 4; // states read by one shared-memory load
                float acc4[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
                for (int q = 0; q < kSPT / kG; ++q)
                {
                    float bv[kG];
                    loadStates<kG>(&Bt[c][lane * kSPT + kG * q], bv);
                    float cv[kG];
#pragma unroll
                    for (int jj = 0; jj < kG; ++jj)
                    {
                        cv[jj] = 0.f;
                    }
                    if (kOutputPass)
                    {
                        loadStates<kG>(&Ct[c][lane * kSPT + kG * q], cv);
                    }
#pragma unroll
                    for (int jj = 0; jj < kG; ++jj)
                    {
                        int const i = kG * q + jj;
                        float const x2 = dt * A2[i];
                        float const a = (jj < kFmaExpPer4) ? fmaExp2(x2) : exp2f(x2); // jj: compile-time
                        h[i] = fmaf(a, h[i], du * bv[jj]);
                        if (kOutputPass)
                        {
                            acc4[jj] = fmaf(h[i], cv[jj], acc4[jj]);
                        }
                    }
                }
                if constexpr (kG == 1)
                    return acc4[0];
                else if constexpr (kG == 2)
                    return acc4[0] + acc4[1];
                else
                    return (acc4[0] + acc4[1]) + (acc4[2] + acc4[3]);
            };
            auto scanToken = [&](int const c, TokenIn const& t) {
                float acc = advanceStates(c, t.dt, t.du);
                if (kOutputPass)
                {
#pragma unroll
                    for (int off = kLPC / 2; off > 0; off /= 2)
                    {
                        acc += __shfl_xor_sync(0xffffffffu, acc, off, kLPC);
                    }
                    if (lane == 0)
                    {
                        // y = (<C, h> + D u) * silu(z) * scale [+ previous direction * scale]; every lane
                        // of the row has read u[c] (its inputs were loaded before the shuffle above).
                        uRow[c] = fromFloat<T>(fmaf(fmaf(Dd, t.uu, acc), t.gate, t.prev));
                    }
                }
            };
            auto fullTile = [&](auto mode) {
                constexpr int kMode = decltype(mode)::value;
                auto tokenAt = [](int jj) { return (kMode & 8) ? kTile - 1 - jj : jj; };
                TokenIn ahead[kLookahead];
#pragma unroll
                for (int k = 0; k < kLookahead; ++k)
                {
                    ahead[k] = loadToken(tokenAt(k), mode);
                }
#pragma unroll(kTokenUnroll)
                for (int jj = 0; jj < kTile; ++jj)
                {
                    TokenIn const cur = ahead[0];
#pragma unroll
                    for (int k = 0; k + 1 < kLookahead; ++k)
                    {
                        ahead[k] = ahead[k + 1];
                    }
                    // Past the tile's end: reload the last token (unused; its y is not yet stored).
                    ahead[kLookahead - 1] = loadToken(tokenAt(min(jj + kLookahead, kTile - 1)), mode);
                    scanToken(tokenAt(jj), cur);
                }
            };
            /*
             * Token-split full tiles (kLPC = 2, 4 or 8 lanes a channel): lane l prepares token g * kLPC + l
             * of every group g of kLPC tokens (its softplus, delta * u, gate, y) and the group's
             * delta and delta * u reach every lane by shuffles; each lane then advances its kSPT states
             * over the kLPC tokens, and a reduce-scatter gives lane l the <C, h> of its own token. The
             * per-token work is done once a channel, not once a lane.
             */
            auto fullTileSplit = [&](auto mode) {
                constexpr int kMode = decltype(mode)::value;
                constexpr int kGroups = kTile / kLPC;
                auto tokenAt = [](int jj) { return (kMode & 8) ? kTile - 1 - jj : jj; };
                TokenIn ahead = loadToken(tokenAt(lane), mode);
#pragma unroll(kTokenUnroll > kGroups ? kGroups : kTokenUnroll)
                for (int g = 0; g < kGroups; ++g)
                {
                    TokenIn const mine = ahead;
                    // Past the tile's end: reload this group's token (unused; its y is not yet stored).
                    ahead = loadToken(tokenAt(min(g + 1, kGroups - 1) * kLPC + lane), mode);
                    float dtk[kLPC], duk[kLPC], acc[kLPC];
#pragma unroll
                    for (int k = 0; k < kLPC; ++k)
                    {
                        dtk[k] = __shfl_sync(0xffffffffu, mine.dt, k, kLPC);
                        duk[k] = __shfl_sync(0xffffffffu, mine.du, k, kLPC);
                    }
#pragma unroll
                    for (int k = 0; k < kLPC; ++k)
                    {
                        acc[k] = advanceStates(tokenAt(g * kLPC + k), dtk[k], duk[k]);
                    }
                    if (kOutputPass)
                    {
                        float const own = reduceScatterLanes<kLPC>(acc, lane);
                        uRow[tokenAt(g * kLPC + lane)] = fromFloat<T>(fmaf(fmaf(Dd, mine.uu, own), mine.gate, mine.prev));
                    }
                }
            };
            using Generic = std::integral_constant<int, kGeneric>;
            bool const specialised = args.deltaSoftplus && (!kOutputPass || hasZ);
            if (tValid == kTile && specialised)
            {
                // Pass A reads neither z nor prev: the z / prev bits are left clear there.
                constexpr int kZ = kOutputPass ? 2 : 0;
                auto run = [&](auto mode) {
                    if constexpr (kSplitTokens)
                        fullTileSplit(mode);
                    else
                        fullTile(mode);
                };
                if (!reverse && !hasPrev)
                    run(std::integral_constant<int, 1 | kZ>{});
                else if (reverse && !hasPrev)
                    run(std::integral_constant<int, 1 | kZ | 8>{});
                else if (!reverse)
                    run(std::integral_constant<int, 1 | kZ | (kOutputPass ? 4 : 0)>{});
                else
                    run(std::integral_constant<int, 1 | kZ | (kOutputPass ? 4 : 0) | 8>{});
            }
            else
            {
                for (int jj = 0; jj < tValid; ++jj)
                {
                    int const c = reverse ? tValid - 1 - jj : jj;
                    scanToken(c, loadToken(c, Generic{}));
                }
            }
            if (j + 1 < numTiles)
            {
                land(j + 1);
            }
            __syncthreads(); // tile j's y complete; tile j + 1 landed; stage j & 1 free for tile j + 2
            if (kOutputPass)
            {
                plan.store(out, s.u[j % 3], outBase + t0, rowsValid, tValid, args.rowStride);
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

/*
 * Warp-specialised output kernel (kernel v18, issue 11; VIM_SCAN_WS = 0 keeps the launcher off it).
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
#ifndef VIM_SCAN_WS
#define VIM_SCAN_WS 1
#endif
#ifndef VIM_SCAN_WS_STAGES
// Shared-memory stages; 3 was 8-11% slower than 2 with either hand-over (H200, 2026-12-01).
#define VIM_SCAN_WS_STAGES 2
#endif
constexpr int kWsCopyThreads = 128; // copy threads (4 warps: one a scheduler), threads 0..127 of a block
constexpr int kWsRows = 384;        // scan threads (12 warps), one channel each
constexpr int kWsThreads = kWsCopyThreads + kWsRows;
constexpr int kWsStages = VIM_SCAN_WS_STAGES;
constexpr int kWsChunksPerRow = kTile * 2 / 16; // 16-byte chunks of a 16-bit row tile
static_assert(kWsRows * kWsChunksPerRow % kWsCopyThreads == 0, "copy items spread evenly");
constexpr int kBarCopy = 1; // the copy warps' named barrier (0 is __syncthreads')

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
 * The warp-specialised kernel when it applies (VIM_SCAN_WS): one block an SM must fit (shared memory,
 * registers; occupancy query once per device), a block's rows must be indexable in 32 bits, and the
 * grid must not leave more than a sixth of its last wave empty (a block holds 384 channels: batch 128
 * fills whole waves of 132 SMs for Vim-T/S/B, small batches do not). Returns false to keep the other kernel.
 */
#if VIM_SCAN_WS
bool chunkAligned(void const* ptr)
{
    return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0;
}

template <typename T>
bool wsApplies(KernelArgs const& args, int sms)
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
    // VIM_SCAN_WS_FORCE (tests): wherever the kernel can run, however few blocks.
    static bool const force = std::getenv("VIM_SCAN_WS_FORCE") != nullptr;
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
#endif

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
    // Launch shape from channels per SM (measured on the H100 and H200 over Vim's shapes, bench/RESULTS.md):
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
    // lanes, vim_base batch 1 @ 6085 332 vs 392 (bench/RESULTS.md).
    if (p.seqlen >= 512 && perSm >= 8)
        return 2;
    // 40..63 channels an SM at short sequences: 8 lanes of 2 states each, one chunk (2026-12-01, H200,
    // bench_scan --explore: vim_small batch 8 @ 197 55.0 vs 59.1 us for 4 lanes x 3 chunks, vim_tiny
    // batch 16 52.5 vs 57.9; slower at 23 and 93 channels an SM and at L = 577; bench/RESULTS.md).
    if (perSm >= 40) // (shorter than 512 tokens here: longer ones took 2 lanes above)
        return 8;
    // Below 64 channels an SM, 4 split lanes beat 2 (2026-12-01, H200, kernel v15, launcher's own chunks:
    // vim_tiny batch 8 @ 197 41.1 vs 44.4 us, vim_small 60.8 vs 62.4; bench/RESULTS.md).
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
    // bench/RESULTS.md).
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
        // VIM_SCAN_LONG_CHUNK tokens (at 6085 tokens longer chunks were slower; 2026-12-01, H200,
        // vim_small batch 8: 4 chunks 1167 us, 13 chunks 1136; bench/RESULTS.md). Waves past the first are
        // fine here: the chunks are long, so a last partial wave costs little.
        int64_t const byOccupancy = std::max<int64_t>(1, static_cast<int64_t>(sms) * minBlocksFor(16) * kThreads / threads);
        want = std::max<int64_t>(byOccupancy, (p.seqlen + VIM_SCAN_LONG_CHUNK - 1) / VIM_SCAN_LONG_CHUNK);
    }
    else
    {
        int64_t const resident = static_cast<int64_t>(sms) * residentBlocksPerSm(p, lanes) * kThreads;
        want = std::max<int64_t>(1, resident / threads);
    }
    // Chunks of at least 32 tokens; one tile (16) when a channel is split over 4 lanes (batch 1: the time
    // is the latency of the chunk's token steps; 2026-12-01, H200, vim_tiny batch 1 @ 197: 13 chunks
    // 18.0 us vs 6 chunks 21.2 us, bench/RESULTS.md).
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
#if VIM_SCAN_WS
    if (lanes == 1)
    {
        int const sms = smCountOf(p);
        switch (p.dtype)
        {
        case ScanDType::kFLOAT:
            break;
        case ScanDType::kHALF:
            if (wsApplies<__half>(args, sms))
                return launchWs<__half>(args, stream);
            break;
        case ScanDType::kBF16:
            if (wsApplies<__nv_bfloat16>(args, sms))
                return launchWs<__nv_bfloat16>(args, stream);
            break;
        }
    }
#endif
    switch (p.dtype)
    {
    case ScanDType::kFLOAT: return launchForLayout<float>(args, spt, lanes, stream);
    case ScanDType::kHALF: return launchForLayout<__half>(args, spt, lanes, stream);
    case ScanDType::kBF16: return launchForLayout<__nv_bfloat16>(args, spt, lanes, stream);
    }
    return cudaErrorInvalidValue;
}

} // namespace vim
