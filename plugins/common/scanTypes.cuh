/*
 * Element-type conversions shared by the CUDA kernels of libvim_kernels.so (the scan core and the
 * fast-path conv / norm kernels): T in {float, __half, __nv_bfloat16} to and from the fp32 they
 * compute in (round to nearest on the way back).
 */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace vim
{

__device__ __forceinline__ float toFloat(float v)
{
    return v;
}
__device__ __forceinline__ float toFloat(__half v)
{
    return __half2float(v);
}
__device__ __forceinline__ float toFloat(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v)
{
    return v;
}
template <>
__device__ __forceinline__ __half fromFloat<__half>(float v)
{
    return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

//! The 16 bits of a 16-bit element, and back (two tokens of a row move as one 32-bit word).
__device__ __forceinline__ unsigned short bitsOf(__half v)
{
    return __half_as_ushort(v);
}
__device__ __forceinline__ unsigned short bitsOf(__nv_bfloat16 v)
{
    return __bfloat16_as_ushort(v);
}
template <typename T>
__device__ __forceinline__ T fromBits(unsigned short b);
template <>
__device__ __forceinline__ __half fromBits<__half>(unsigned short b)
{
    return __ushort_as_half(b);
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromBits<__nv_bfloat16>(unsigned short b)
{
    return __ushort_as_bfloat16(b);
}

//! Element k (0: the lower address) of a word holding two 16-bit elements, as a float.
template <typename T>
__device__ __forceinline__ float elementOf(unsigned w, int k)
{
    return toFloat(fromBits<T>(static_cast<unsigned short>(k == 0 ? w : w >> 16)));
}

//! The word holding lo at the lower address and hi above it.
template <typename T>
__device__ __forceinline__ unsigned packPair(T lo, T hi)
{
    return static_cast<unsigned>(bitsOf(lo)) | (static_cast<unsigned>(bitsOf(hi)) << 16);
}

} // namespace vim
