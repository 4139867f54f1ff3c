/*
 * Selective scan on the CPU: C++ with the CUDA core's contract (selectiveScanParams.h) and
 * numerics (fp32 state, output rounded once to T; softplus and the decays on fmaExp2.cuh's FMA-pipe
 * approximations, ~2e-7 relative, in loops the compiler vectorizes). It serves the ONNX
 * Runtime CPU kernel (plugins/ort_ops), so a plugin-mode graph runs on any onnxruntime install,
 * and it is a readable statement of what the CUDA kernel computes.
 *
 * Only the contiguous / batch-strided layouts are used (rowStride 0 or >= seqlen works too); the
 * pointers in `p` are host pointers. numChunks, smCount and lanesPerChannel are ignored.
 */
#pragma once

#include "selectiveScanParams.h"

#include <cstdint>

namespace vim
{

//! Run rows [rowBegin, rowEnd) of the (batch x dim) channel grid. Thread-safe for disjoint ranges,
//! so a caller may split the rows over a thread pool. Returns nullptr, or a static message when
//! the sizes are invalid (the same rules as selectiveScanValidate, minus the CUDA-only limits).
char const* selectiveScanCpuRows(SelectiveScanParams const& p, int64_t rowBegin, int64_t rowEnd);

//! Check sizes and pointers for the CPU implementation; nullptr when fine.
char const* selectiveScanCpuValidate(SelectiveScanParams const& p);

//! n elements of type `t` at element `offset` of `src` to fp32, and back (one rounding); the CPU loops
//! of the op library convert whole rows with these.
void loadRow(ScanDType t, void const* src, int64_t offset, int32_t n, float* dst);
void storeRow(ScanDType t, float const* src, int32_t n, void* dst, int64_t offset);

//! Half / bfloat16 <-> float conversions (round to nearest even), shared by the CPU code paths.
float halfBitsToFloat(uint16_t h);
uint16_t floatToHalfBits(float f);
float bf16BitsToFloat(uint16_t b);
uint16_t floatToBf16Bits(float f);

} // namespace vim
