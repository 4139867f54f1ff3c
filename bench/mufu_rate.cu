// Throughput of the GPU's exp2 unit per operand type: fp32 `ex2.approx.ftz.f32`, 16-bit `ex2.approx.f16`,
// and the packed `ex2.approx.f16x2` / `ex2.approx.ftz.bf16x2`, which sm_90 compiles to two MUFU.EX2.F16 /
// BF16 instructions (tools/packed_ex2_check.py --sass). Issue 11 asks whether packed 16-bit exp2 lowers
// the scan's MUFU bound: only if the 16-bit MUFU runs faster than the fp32 one, which this measures.
//   nvcc -O3 -arch=sm_90 -o /tmp/mufu_rate bench/mufu_rate.cu && /tmp/mufu_rate
// Each thread runs kChains independent chains x <- ex2(x) - 1 (values stay in (-1, 0)), so the rate is
// the unit's, not a chain's latency. Prints exps per second for each type (median of 5 launches).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CHECK(call)                                                                                         \
    do                                                                                                      \
    {                                                                                                       \
        cudaError_t const e_ = (call);                                                                      \
        if (e_ != cudaSuccess)                                                                              \
        {                                                                                                   \
            std::fprintf(stderr, "error: %s: %s (%s:%d)\n", #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
            std::exit(1);                                                                                   \
        }                                                                                                   \
    } while (0)

constexpr int kChains = 8;
constexpr int kIters = 4096;

enum Op
{
    kF32 = 0,
    kF16 = 1,
    kF16x2 = 2,
    kBf16x2 = 3
};

template <int kOp>
__global__ void rate(float seed, float* sink)
{
    float x[kChains];
    unsigned p[kChains];
#pragma unroll
    for (int c = 0; c < kChains; ++c)
    {
        x[c] = -seed * (c + 1) * (1.f + threadIdx.x * 1e-4f);
        __half2 const h = __floats2half2_rn(x[c], x[c] * 0.5f);
        __nv_bfloat162 const bf = __floats2bfloat162_rn(x[c], x[c] * 0.5f);
        std::memcpy(&p[c], kOp == kBf16x2 ? static_cast<void const*>(&bf) : static_cast<void const*>(&h), 4);
    }
    unsigned short const minusOneH = 0xBC00u; // -1 as half
    unsigned const minusOneH2 = 0xBC00BC00u;  // (-1, -1) as half2
    unsigned const minusOneBf2 = 0xBF80BF80u; // (-1, -1) as bfloat162
    for (int i = 0; i < kIters; ++i)
    {
#pragma unroll
        for (int c = 0; c < kChains; ++c)
        {
            if (kOp == kF32)
            {
                float e;
                asm volatile("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(x[c]));
                x[c] = e - 1.f;
            }
            else if (kOp == kF16)
            {
                unsigned short e;
                unsigned short const in = static_cast<unsigned short>(p[c]);
                asm volatile("ex2.approx.f16 %0, %1;" : "=h"(e) : "h"(in));
                asm volatile("add.f16 %0, %1, %2;" : "=h"(e) : "h"(e), "h"(minusOneH));
                p[c] = e;
            }
            else if (kOp == kF16x2)
            {
                unsigned e;
                asm volatile("ex2.approx.f16x2 %0, %1;" : "=r"(e) : "r"(p[c]));
                asm volatile("add.f16x2 %0, %1, %2;" : "=r"(p[c]) : "r"(e), "r"(minusOneH2));
            }
            else
            {
                unsigned e;
                asm volatile("ex2.approx.ftz.bf16x2 %0, %1;" : "=r"(e) : "r"(p[c]));
                asm volatile("add.rn.bf16x2 %0, %1, %2;" : "=r"(p[c]) : "r"(e), "r"(minusOneBf2));
            }
        }
    }
    float s = 0.f;
#pragma unroll
    for (int c = 0; c < kChains; ++c)
    {
        s += x[c] + static_cast<float>(p[c] & 0xffu);
    }
    if (s == 12345.f) // never true for these inputs; keeps the chains alive
    {
        sink[0] = s;
    }
}

template <int kOp>
double expsPerSecond(int blocks, int threads, float* sink)
{
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    rate<kOp><<<blocks, threads>>>(0.1f, sink); // warm-up
    CHECK(cudaGetLastError());
    std::vector<float> ms;
    for (int r = 0; r < 5; ++r)
    {
        CHECK(cudaEventRecord(start));
        rate<kOp><<<blocks, threads>>>(0.1f + r * 1e-3f, sink);
        CHECK(cudaGetLastError());
        CHECK(cudaEventRecord(stop));
        CHECK(cudaEventSynchronize(stop));
        float t = 0.f;
        CHECK(cudaEventElapsedTime(&t, start, stop));
        ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    CHECK(cudaEventDestroy(start));
    CHECK(cudaEventDestroy(stop));
    double const exps = double(blocks) * threads * kChains * kIters * (kOp >= kF16x2 ? 2 : 1);
    return exps / (ms[2] * 1e-3);
}

int main()
{
    cudaDeviceProp prop{};
    CHECK(cudaGetDeviceProperties(&prop, 0));
    int const threads = 256;
    int const blocks = prop.multiProcessorCount * 8;
    float* sink = nullptr;
    CHECK(cudaMalloc(&sink, sizeof(float)));
    double const f32 = expsPerSecond<kF32>(blocks, threads, sink);
    double const f16 = expsPerSecond<kF16>(blocks, threads, sink);
    double const f16x2 = expsPerSecond<kF16x2>(blocks, threads, sink);
    double const bf16x2 = expsPerSecond<kBf16x2>(blocks, threads, sink);
    int clockKHz = 0;
    CHECK(cudaDeviceGetAttribute(&clockKHz, cudaDevAttrClockRate, 0));
    double const perSmClk = 1.0 / (double(prop.multiProcessorCount) * clockKHz * 1e3);
    std::printf("| exp2 operand | exps/s | vs fp32 | exps / SM / clock (max clock %d MHz) |\n", clockKHz / 1000);
    std::printf("|---|---|---|---|\n");
    std::printf("| fp32 ex2.approx.ftz.f32 | %.3e | 1.00 | %.1f |\n", f32, f32 * perSmClk);
    std::printf("| fp16 ex2.approx.f16 | %.3e | %.2f | %.1f |\n", f16, f16 / f32, f16 * perSmClk);
    std::printf("| fp16x2 ex2.approx.f16x2 | %.3e | %.2f | %.1f |\n", f16x2, f16x2 / f32, f16x2 * perSmClk);
    std::printf("| bf16x2 ex2.approx.ftz.bf16x2 | %.3e | %.2f | %.1f |\n", bf16x2, bf16x2 / f32, bf16x2 * perSmClk);
    CHECK(cudaFree(sink));
    return 0;
}
