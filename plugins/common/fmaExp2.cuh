/*
 * 2^x from FMAs and integer operations alone (no libm call, no special-function unit), for the CPU
 * scan's state loop (selectiveScanCpu.cpp), which the compiler vectorizes only without a libm call, and
 * the CPU SiLU of the ONNX Runtime library. Measured against float64 by plugins/tests/fmaExp2Test.cpp
 * (tests/ops/test_fma_exp2.py). On the GPU the scan keeps the MUFU's exp2: splitting the decays between
 * the MUFU and this polynomial on the FMA pipe was measured slower.
 *
 *   x = n + f, n = rint(x) (by the 1.5 * 2^23 rounding trick: one FADD, no conversion instruction),
 *   f in [-0.5, 0.5];  2^f ~ p(f), degree-5 polynomial fitted for relative error (5 FMAs);
 *   2^n applied by adding n to p's exponent bits (integer ALU).
 *
 * Max relative error 2.2e-7 for results >= FLT_MIN (ex2.approx.f32: ~2^-22 = 2.4e-7); results below
 * FLT_MIN flush to +0 as ex2.approx.ftz.f32 does; x > 127 gives +inf (2^127..2^128 included: the scan's
 * decays have x <= 0); NaN stays NaN.
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

constexpr float kLog2e = 1.4426950408889634f; //!< e^x = 2^(x log2 e)

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

//! a * b + c: one fused multiply-add on the GPU and on CPUs built with FMA (-mfma, aarch64); a multiply
//! and an add elsewhere (x86-64 without -mfma has no FMA instruction, and std::fmaf would be a slow
//! library call in the CPU scan's inner loop). Both roundings are inside the error bound above.
VIM_HOST_DEVICE float fmaRn(float a, float b, float c)
{
#if defined(__CUDA_ARCH__)
    return __fmaf_rn(a, b, c);
#elif defined(__FMA__) || defined(__aarch64__)
    return __builtin_fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

//! 2^x on the FMA / ALU pipes (see the file comment for the error bound and the domain).
VIM_HOST_DEVICE float fmaExp2(float x)
{
    constexpr float kRound = 12582912.f; // 1.5 * 2^23: x + kRound holds rint(x) in its low mantissa bits
    float const xc = x < -127.f ? -127.f : (x > 127.f ? 127.f : x);
    float const t = xc + kRound;
    float const f = xc - (t - kRound); // in [-0.5, 0.5]
    float p = 1.327644451521337e-3f;
    p = fmaRn(p, f, 9.67553723603487e-3f);
    p = fmaRn(p, f, 5.550713464617729e-2f);
    p = fmaRn(p, f, 2.4022120237350464e-1f);
    p = fmaRn(p, f, 6.931469440460205e-1f);
    p = fmaRn(p, f, 1.0000001192092896f);
    int32_t const n = floatBits(t) - floatBits(kRound);
    float const r = bitsFloat(floatBits(p) + n * (1 << 23));
    return x < -126.f ? 0.f : (x > 127.f ? bitsFloat(0x7f800000) : (x != x ? x : r));
}

//! softplus(x) = log(1 + e^x) with upstream's threshold (x > 20 returns x), on the FMA / ALU pipes:
//! max(x, 0) + log1p(w), w = e^-|x| in (0, 1] by fmaExp2, log1p(w) = w * P(w) with a degree-8 polynomial
//! fitted for relative error on [0, 1]. Relative error <= 5e-7 + 1e-7 |x| (host check, fmaExp2Test.cpp;
//! the |x| term is the rounding of the exp2 argument, as in the scan's own decays); e^-|x| below FLT_MIN
//! flushes, so softplus(x < -87) is 0 instead of ~1e-38.
VIM_HOST_DEVICE float fmaSoftplus(float x)
{
    float const ax = x < 0.f ? -x : x;
    float const w = fmaExp2(-ax * kLog2e);
    float p = 5.232691764831543e-3f;
    p = fmaRn(p, w, -2.9505223035812378e-2f);
    p = fmaRn(p, w, 7.822591811418533e-2f);
    p = fmaRn(p, w, -1.3663241267204285e-1f);
    p = fmaRn(p, w, 1.9106003642082214e-1f);
    p = fmaRn(p, w, -2.484298199415207e-1f);
    p = fmaRn(p, w, 3.331909775733948e-1f);
    p = fmaRn(p, w, -4.999949336051941e-1f);
    p = fmaRn(p, w, 9.999999403953552e-1f);
    float const r = (x > 0.f ? x : 0.f) + w * p;
    return x > 20.f ? x : r;
}

} // namespace vim
