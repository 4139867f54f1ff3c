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

} // namespace vim
