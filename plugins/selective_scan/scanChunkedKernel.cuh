/*
 * The chunked selective-scan kernel (any dtype, dstate, lane count and chunking), launched by
 * selectiveScanKernel.cu.
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
#pragma once

#include "scanTiles.cuh"

namespace vim
{
namespace
{

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
    return spt >= 16 ? kMinBlocks : (spt >= 4 ? kMinBlocksFewStates : kMinBlocksTinyStates);
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
    // With 2 or 4 lanes a channel, full tiles split the per-token work (softplus, SiLU gate, loads, y) by
    // token among the lanes instead of repeating it in every lane (vim_small batch 1: 30.7 -> 22.4 us); 2
    // states a thread (8 lanes) always split: every lane repeating the per-token work would cost more than
    // its states.
    constexpr bool kSplitTokens = kLPC == 2 || kLPC == 4 || kSPT < 4;
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
                        float const a = exp2f(x2);
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

} // namespace
} // namespace vim
