/*
 * Selective scan on the CPU (see selectiveScanCpu.h). One channel row at a time: its tokens are
 * converted to fp32 once, the N states live in a small fp32 array, and both directions of the
 * fused form accumulate into one fp32 row before the gate and the single rounding to T.
 */
#include "selectiveScanCpu.h"

#include "fmaExp2.cuh"

#include <cmath>
#include <cstring>
#include <vector>

namespace vim
{

float halfBitsToFloat(uint16_t h)
{
    uint32_t const sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu)
    {
        bits = sign | 0x7f800000u | (mant << 13); // inf / nan
    }
    else if (exp != 0)
    {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    else if (mant == 0)
    {
        bits = sign; // +-0
    }
    else
    {
        // subnormal half: normalise
        exp = 113u;
        while ((mant & 0x400u) == 0)
        {
            mant <<= 1;
            --exp;
        }
        bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t floatToHalfBits(float f)
{
    uint32_t x;
    std::memcpy(&x, &f, sizeof(x));
    uint16_t const sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    uint32_t const absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) // inf / nan
        return static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u));
    if (absx >= 0x477ff000u) // rounds to >= 65520: overflow to inf
        return static_cast<uint16_t>(sign | 0x7c00u);
    if (absx < 0x38800000u) // below the smallest normal half (2^-14): subnormal or zero
    {
        if (absx < 0x33000000u) // < 2^-25: rounds to zero
            return sign;
        uint32_t const e = absx >> 23;
        uint32_t const m = (absx & 0x7fffffu) | 0x800000u;
        uint32_t const shift = 126u - e; // 14..24
        uint32_t half = m >> shift;
        uint32_t const rem = m & ((1u << shift) - 1u);
        uint32_t const mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (half & 1u)))
            ++half;
        return static_cast<uint16_t>(sign | half);
    }
    uint32_t h = ((absx >> 13) - (112u << 10));
    uint32_t const rem = absx & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        ++h;
    return static_cast<uint16_t>(sign | h);
}

float bf16BitsToFloat(uint16_t b)
{
    uint32_t const bits = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t floatToBf16Bits(float f)
{
    uint32_t x;
    std::memcpy(&x, &f, sizeof(x));
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return static_cast<uint16_t>((x >> 16) | 0x40u); // quiet nan
    uint32_t const lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return static_cast<uint16_t>(x >> 16);
}

void loadRow(ScanDType t, void const* src, int64_t offset, int32_t n, float* dst)
{
    switch (t)
    {
    case ScanDType::kFLOAT: std::memcpy(dst, static_cast<float const*>(src) + offset, sizeof(float) * n); break;
    case ScanDType::kHALF:
        for (int32_t i = 0; i < n; ++i)
            dst[i] = halfBitsToFloat(static_cast<uint16_t const*>(src)[offset + i]);
        break;
    case ScanDType::kBF16:
        for (int32_t i = 0; i < n; ++i)
            dst[i] = bf16BitsToFloat(static_cast<uint16_t const*>(src)[offset + i]);
        break;
    }
}

void storeRow(ScanDType t, float const* src, int32_t n, void* dst, int64_t offset)
{
    switch (t)
    {
    case ScanDType::kFLOAT: std::memcpy(static_cast<float*>(dst) + offset, src, sizeof(float) * n); break;
    case ScanDType::kHALF:
        for (int32_t i = 0; i < n; ++i)
            static_cast<uint16_t*>(dst)[offset + i] = floatToHalfBits(src[i]);
        break;
    case ScanDType::kBF16:
        for (int32_t i = 0; i < n; ++i)
            static_cast<uint16_t*>(dst)[offset + i] = floatToBf16Bits(src[i]);
        break;
    }
}

namespace
{

//! One channel of one direction: acc[t] += (C_t . h_t) + skip * u[t] over the tokens in scan order,
//! h_t = exp(delta_t * A) * h_{t-1} + delta_t * u_t * B_t. kN > 0: dstate known at compile time (the
//! states stay in registers); 0: any dstate up to 256. bcT holds B and C token-major, (t, [B | C], n).
template <int kN>
__attribute__((always_inline)) inline void scanRowStates(float const* __restrict u, float const* __restrict delta, float const* __restrict bcT,
    float const* __restrict a2, int32_t N, int32_t L, bool reverse, float skip, float* __restrict acc)
{
    int32_t const n = kN > 0 ? kN : N;
    float h[kN > 0 ? kN : 256];
    for (int32_t k = 0; k < n; ++k)
        h[k] = 0.f;
    for (int32_t i = 0; i < L; ++i)
    {
        int32_t const t = reverse ? L - 1 - i : i;
        float const dl = delta[t];
        float const du = dl * u[t];
        float const* __restrict Bt = bcT + static_cast<size_t>(t) * 2 * n;
        float const* __restrict Ct = Bt + n;
        // no dependence across states and no libm call (fmaExp2): the compiler vectorizes this loop
        for (int32_t k = 0; k < n; ++k)
            h[k] = fmaExp2(dl * a2[k]) * h[k] + du * Bt[k];
        float y = 0.f;
        for (int32_t k = 0; k < n; ++k)
            y += Ct[k] * h[k];
        acc[t] += y + skip * u[t];
    }
}

// x86-64 (GCC): the row loops are also compiled for AVX2 + FMA and picked at load time (ifunc), the
// baseline SSE2 build stays for older CPUs. Elsewhere (aarch64: NEON is the baseline) one build.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VIM_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VIM_CPU_CLONES
#endif

VIM_CPU_CLONES void scanRow16(float const* u, float const* delta, float const* bcT, float const* a2, int32_t N, int32_t L,
    bool reverse, float skip, float* acc)
{
    scanRowStates<16>(u, delta, bcT, a2, N, L, reverse, skip, acc);
}

VIM_CPU_CLONES void scanRowAny(float const* u, float const* delta, float const* bcT, float const* a2, int32_t N,
    int32_t L, bool reverse, float skip, float* acc)
{
    scanRowStates<0>(u, delta, bcT, a2, N, L, reverse, skip, acc);
}

//! delta + bias, then softplus when asked, over a row.
VIM_CPU_CLONES void deltaRow(float* dt, int32_t L, float bias, bool softplus)
{
    if (softplus)
        for (int32_t t = 0; t < L; ++t)
            dt[t] = fmaSoftplus(dt[t] + bias);
    else
        for (int32_t t = 0; t < L; ++t)
            dt[t] += bias;
}

int64_t batchStride(int64_t given, int64_t dense)
{
    return given != 0 ? given : dense;
}

} // namespace

char const* selectiveScanCpuValidate(SelectiveScanParams const& p)
{
    if (p.batch < 1 || p.dim < 1 || p.seqlen < 1)
        return "batch, dim and seqlen must be >= 1";
    if (p.dstate < 1 || p.dstate > 256)
        return "dstate must be in 1..256";
    if (p.numDirections != 1 && p.numDirections != 2)
        return "numDirections must be 1 or 2";
    if (p.dtype != ScanDType::kFLOAT && p.dtype != ScanDType::kHALF && p.dtype != ScanDType::kBF16)
        return "dtype must be fp32, fp16 or bf16";
    if (!p.out)
        return "out is null";
    if (p.rowStride != 0 && p.rowStride < p.seqlen)
        return "rowStride must be 0 (= seqlen) or >= seqlen";
    for (int32_t i = 0; i < p.numDirections; ++i)
    {
        ScanDirection const& d = p.dir[i];
        if (!d.u || !d.delta || !d.A || !d.B || !d.C)
            return "u, delta, A, B and C must not be null";
    }
    return nullptr;
}

char const* selectiveScanCpuRows(SelectiveScanParams const& p, int64_t rowBegin, int64_t rowEnd)
{
    if (char const* msg = selectiveScanCpuValidate(p))
        return msg;
    int32_t const L = p.seqlen;
    int32_t const N = p.dstate;
    int64_t const stride = p.rowStride > 0 ? p.rowStride : L;
    int64_t const rows = static_cast<int64_t>(p.dim) * stride;
    int64_t const states = static_cast<int64_t>(N) * stride;
    std::vector<float> acc(L), u(L), dt(L), a2(N);
    int64_t cachedBatch[2] = {-1, -1};
    std::vector<float> bcCache[2];

    for (int64_t row = rowBegin; row < rowEnd; ++row)
    {
        int64_t const b = row / p.dim;
        int32_t const c = static_cast<int32_t>(row % p.dim);
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int32_t k = 0; k < p.numDirections; ++k)
        {
            ScanDirection const& d = p.dir[k];
            // B and C of this batch, token-major (t, n) so the state loop reads them contiguously;
            // converted once per batch and direction, reused by every channel of the batch.
            if (cachedBatch[k] != b)
            {
                std::vector<float>& cache = bcCache[k];
                cache.resize(2 * static_cast<size_t>(N) * L);
                std::vector<float> tmp(L);
                for (int32_t n = 0; n < N; ++n)
                {
                    loadRow(p.dtype, d.B, b * batchStride(d.bBatchStride, states) + n * stride, L, tmp.data());
                    for (int32_t t = 0; t < L; ++t)
                        cache[(static_cast<size_t>(t) * 2) * N + n] = tmp[t];
                    loadRow(p.dtype, d.C, b * batchStride(d.cBatchStride, states) + n * stride, L, tmp.data());
                    for (int32_t t = 0; t < L; ++t)
                        cache[(static_cast<size_t>(t) * 2 + 1) * N + n] = tmp[t];
                }
                cachedBatch[k] = b;
            }
            float const* bcT = bcCache[k].data();
            loadRow(p.dtype, d.u, b * batchStride(d.uBatchStride, rows) + c * stride, L, u.data());
            loadRow(p.dtype, d.delta, b * batchStride(d.deltaBatchStride, rows) + c * stride, L, dt.data());
            float const bias = d.deltaBias ? d.deltaBias[c] : 0.f;
            float const skip = d.D ? d.D[c] : 0.f;
            float const* A = d.A + static_cast<int64_t>(c) * N;
            for (int32_t n = 0; n < N; ++n)
                a2[n] = A[n] * kLog2e; // exp(delta * A) = 2^(delta * A * log2 e)
            // delta + bias and its softplus for the whole row first (a vectorized pass, no libm calls)
            deltaRow(dt.data(), L, bias, p.deltaSoftplus);
            auto const run = N == 16 ? scanRow16 : scanRowAny; // 16: Vim's dstate, states in registers
            run(u.data(), dt.data(), bcT, a2.data(), N, L, d.reverse, skip, acc.data());
        }
        // gate (z is shared by both directions), scale, one rounding to T
        ScanDirection const& d0 = p.dir[0];
        if (d0.z)
        {
            loadRow(p.dtype, d0.z, b * batchStride(d0.zBatchStride, rows) + c * stride, L, u.data());
            for (int32_t t = 0; t < L; ++t)
                acc[t] *= u[t] / (1.f + std::exp(-u[t]));
        }
        if (p.outScale != 1.f)
            for (int32_t t = 0; t < L; ++t)
                acc[t] *= p.outScale;
        storeRow(p.dtype, acc.data(), L, p.out, b * rows + c * stride);
    }
    return nullptr;
}

} // namespace vim
