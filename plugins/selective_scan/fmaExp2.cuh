/*
 * 2^x without the MUFU (special-function) pipe: for a share of the scan's decays exp(delta * A), so
 * that the exp() work is split between the MUFU and the FMA pipes (issue 11; FlashAttention-4 does the
 * same for softmax). Not wired into the scan kernel yet: this header is its numerics, measured on the
 * host against float64 (plugins/tests/fmaExp2Test.cpp, tests/ops/test_fma_exp2.py).
 *
 *   x = n + f, n = rint(x) (by the 1.5 * 2^23 rounding trick: one FADD, no conversion instruction),
 *   f in [-0.5, 0.5];  2^f ~ p(f), degree-5 polynomial fitted for relative error (5 FMAs);
 *   2^n applied by adding n to p's exponent bits (integer ALU).
 *
 * Max relative error 2.2e-7 for results >= FLT_MIN (ex2.approx.f32: ~2^-22 = 2.4e-7); results below
 * FLT_MIN flush to +0 as ex2.approx.ftz.f32 does. Domain: x <= 127 (the scan's decays have x <= 0).
 */
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define VIM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#include <cmath>
#define VIM_HOST_DEVICE inline
#endif

namespace vim
{

VIM_HOST_DEVICE int32_t floatBits(float v)
{
#if defined(__CUDA_ARCH__)
    return __float_as_int(v);
#else
    int32_t i;
    std::memcpy(&i, &v, sizeof(i));
    return i;
#endif
}

VIM_HOST_DEVICE float bitsFloat(int32_t i)
{
#if defined(__CUDA_ARCH__)
    return __int_as_float(i);
#else
    float v;
    std::memcpy(&v, &i, sizeof(v));
    return v;
#endif
}

VIM_HOST_DEVICE float fmaRn(float a, float b, float c)
{
#if defined(__CUDA_ARCH__)
    return __fmaf_rn(a, b, c);
#else
    return std::fmaf(a, b, c);
#endif
}

//! 2^x on the FMA / ALU pipes (see the file comment for the error bound and the domain).
VIM_HOST_DEVICE float fmaExp2(float x)
{
    constexpr float kRound = 12582912.f; // 1.5 * 2^23: x + kRound holds rint(x) in its low mantissa bits
    float const xc = x < -127.f ? -127.f : x;
    float const t = xc + kRound;
    float const f = xc - (t - kRound); // in [-0.5, 0.5]
    float p = 1.327644451521337e-3f;
    p = fmaRn(p, f, 9.67553723603487e-3f);
    p = fmaRn(p, f, 5.550713464617729e-2f);
    p = fmaRn(p, f, 2.4022120237350464e-1f);
    p = fmaRn(p, f, 6.931469440460205e-1f);
    p = fmaRn(p, f, 1.0000001192092896f);
    int32_t const n = floatBits(t) - floatBits(kRound);
    return x < -126.f ? 0.f : bitsFloat(floatBits(p) + n * (1 << 23));
}

} // namespace vim
