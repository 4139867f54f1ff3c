/*
 * Host check of vim::fmaExp2 and vim::fmaSoftplus (plugins/common/fmaExp2.cuh) against float64: every float in
 * [-130, 1] on a dense grid plus each power-of-two boundary, and inf / -inf / NaN / overflow / 0; prints the max relative error over
 * results >= FLT_MIN and exits 1 when it exceeds the bound or a flushed result is not +0.
 *
 *   g++ -std=c++17 -O2 -ffp-contract=off -I plugins/selective_scan plugins/tests/fmaExp2Test.cpp -o t && ./t
 */
#include "fmaExp2.cuh"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <initializer_list>

int main()
{
    double worst = 0, worstX = 0;
    long count = 0, badFlush = 0;
    auto check = [&](float x) {
        float const got = vim::fmaExp2(x);
        double const want = std::exp2(static_cast<double>(x));
        ++count;
        if (want < FLT_MIN)
        {
            if (!(got == 0.f || (got >= FLT_MIN && std::fabs(got / want - 1) < 3e-7)))
                ++badFlush; // flushed to zero, or (just at the boundary) a correct normal result
            return;
        }
        double const rel = std::fabs(static_cast<double>(got) / want - 1);
        if (!(rel <= worst))
        {
            worst = rel;
            worstX = x;
        }
    };
    for (long i = 0; i <= 131L * 200000; ++i)
        check(-130.f + static_cast<float>(i) / 200000.f);
    for (int e = -130; e <= 1; ++e)
        for (float d : {-1e-6f, 0.f, 1e-6f, 0.5f, -0.5f, 0.49999997f, 0.50000006f})
            check(static_cast<float>(e) + d);
    float const inf = HUGE_VALF;
    bool const special = vim::fmaExp2(inf) == inf && vim::fmaExp2(-inf) == 0.f && vim::fmaExp2(200.f) == inf
        && std::isnan(vim::fmaExp2(std::nanf(""))) && std::fabs(vim::fmaExp2(0.f) - 1.f) <= 2.5e-7f;
    if (!special)
        ++badFlush;
    double worstSp = 0, worstSpX = 0;
    for (long i = 0; i <= 140L * 100000; ++i)
    {
        float const x = -100.f + static_cast<float>(i) / 100000.f;
        double const xd = x;
        double const want = xd > 20 ? xd : std::log1p(std::exp(xd));
        if (want < 1e-37)
            continue; // e^x below FLT_MIN: flushed (softplus 0)
        // the bound grows with |x|: e^-|x| is 2^(-|x| log2 e), whose float argument is rounded (ulp ~ |x| 1e-7)
        double const rel = std::fabs(static_cast<double>(vim::fmaSoftplus(x)) / want - 1) / (5e-7 + 1e-7 * std::fabs(xd));
        if (!(rel <= worstSp))
        {
            worstSp = rel;
            worstSpX = x;
        }
    }
    std::printf("fmaSoftplus: max relative error / (5e-7 + 1e-7 |x|) = %.3f at x = %.9g (<= 1 passes)\n", worstSp,
        worstSpX);
    if (!(worstSp <= 1.0))
        ++badFlush;
    std::printf("fmaExp2: %ld inputs, max relative error %.3e at x = %.9g, bad flushes %ld\n", count, worst, worstX,
        badFlush);
    return (worst <= 2.5e-7 && badFlush == 0) ? 0 : 1;
}
