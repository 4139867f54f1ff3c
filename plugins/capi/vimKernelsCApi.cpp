/*
 * C ABI of the TensorRT-free kernel library (libvim_kernels.so), for ctypes and other FFIs.
 * Flat arguments only (no structs cross the boundary); 0 = success, else a cudaError_t value or -1
 * for invalid arguments, with a message from vim_last_error().
 */
#include "addRmsNormKernel.h"
#include "causalConv1dKernel.h"
#include "selectiveScanKernel.h"

#include <cstring>
#include <string>

namespace
{
thread_local std::string gLastError;

vim::SelectiveScanParams makeParams(int dtype, int batch, int dim, int seqlen, int dstate, int deltaSoftplus,
    int numDirections, int numChunks, int lanesPerChannel)
{
    vim::SelectiveScanParams p{};
    p.dtype = static_cast<vim::ScanDType>(dtype);
    p.batch = batch;
    p.dim = dim;
    p.seqlen = seqlen;
    p.dstate = dstate;
    p.deltaSoftplus = deltaSoftplus != 0;
    p.numDirections = numDirections;
    p.numChunks = numChunks;
    p.lanesPerChannel = lanesPerChannel;
    return p;
}

//! Validate, launch on `stream`, and map the outcome to the C ABI's return value and vim_last_error().
template <typename Params, typename Validate, typename Launch>
int checkedLaunch(Params const& p, Validate validate, Launch launch, void* stream)
{
    if (char const* msg = validate(p))
    {
        gLastError = msg;
        return -1;
    }
    cudaError_t const err = launch(p, static_cast<cudaStream_t>(stream));
    if (err != cudaSuccess)
    {
        gLastError = std::string("CUDA error: ") + cudaGetErrorString(err);
        return static_cast<int>(err);
    }
    gLastError.clear();
    return 0;
}
} // namespace

extern "C"
{

__attribute__((visibility("default"))) int vim_kernels_abi_version()
{
    return 5; // 2: lanesPerChannel argument; 3: batch strides, causal conv1d + SiLU; 4: output batch strides;
              // 5: kernel argument of vim_selective_scan_fwd
}

__attribute__((visibility("default"))) char const* vim_last_error()
{
    return gLastError.c_str();
}

__attribute__((visibility("default"))) int vim_selective_scan_num_chunks(int dtype, int batch, int dim, int seqlen,
    int dstate, int numDirections, int numChunks, int lanesPerChannel)
{
    return vim::selectiveScanChooseChunks(
        makeParams(dtype, batch, dim, seqlen, dstate, 1, numDirections, numChunks, lanesPerChannel));
}

__attribute__((visibility("default"))) int vim_selective_scan_lanes(int dtype, int batch, int dim, int seqlen,
    int dstate, int numDirections, int numChunks, int lanesPerChannel)
{
    return vim::selectiveScanChooseLanes(
        makeParams(dtype, batch, dim, seqlen, dstate, 1, numDirections, numChunks, lanesPerChannel));
}

__attribute__((visibility("default"))) size_t vim_selective_scan_workspace_size(int dtype, int batch, int dim,
    int seqlen, int dstate, int numDirections, int numChunks, int lanesPerChannel)
{
    return vim::selectiveScanWorkspaceSize(
        makeParams(dtype, batch, dim, seqlen, dstate, 1, numDirections, numChunks, lanesPerChannel));
}

//! Direction i uses u[i], delta[i], A[i], B[i], C[i], D[i], z[i], deltaBias[i], reverse[i] (arrays of 2)
//! and batchStrides[5 * i + 0..4] for u, delta, z, B, C (elements; 0 = contiguous; the array may be null).
//! rowStride: elements between rows of all row tensors and of out (0 = seqlen); outBatchStride: elements
//! between batches of out (0 = dim * rowStride). Batch strides may also describe channel-major tensors,
//! (rows, batch, tokens): see vim::ScanDirection.
__attribute__((visibility("default"))) int vim_selective_scan_fwd(int dtype, int batch, int dim, int seqlen,
    int dstate, int deltaSoftplus, int numDirections, void const* const* u, void const* const* delta,
    float const* const* A, void const* const* B, void const* const* C, float const* const* D,
    void const* const* z, float const* const* deltaBias, int const* reverse, long long const* batchStrides,
    float outScale, void* out, int numChunks, int lanesPerChannel, int kernel, int rowStride,
    long long outBatchStride, void* workspace, size_t workspaceBytes, void* stream)
{
    if (kernel != static_cast<int>(vim::ScanKernel::kAuto) && kernel != static_cast<int>(vim::ScanKernel::kWarpSpecialized))
    {
        gLastError = "kernel must be 0 (the launcher's choice) or 1 (the warp-specialised kernel wherever it can run)";
        return -1;
    }
    if (dtype < 0 || dtype > 2)
    {
        gLastError = "dtype must be 0 (fp32), 1 (fp16) or 2 (bf16)";
        return -1;
    }
    if (numDirections != 1 && numDirections != 2)
    {
        gLastError = "numDirections must be 1 or 2";
        return -1;
    }
    // the per-direction pointer arrays themselves (u[i], ... are checked by selectiveScanValidate)
    if (!u || !delta || !A || !B || !C || !D || !z || !deltaBias || !reverse)
    {
        gLastError = "the u, delta, A, B, C, D, z, delta_bias and reverse arrays must not be null "
                     "(one entry per direction; entries of D, z, delta_bias may be null)";
        return -1;
    }
    vim::SelectiveScanParams p
        = makeParams(dtype, batch, dim, seqlen, dstate, deltaSoftplus, numDirections, numChunks, lanesPerChannel);
    p.kernel = static_cast<vim::ScanKernel>(kernel);
    p.outScale = outScale;
    p.out = out;
    p.rowStride = rowStride;
    p.outBatchStride = outBatchStride;
    for (int i = 0; i < numDirections && i < 2; ++i)
    {
        p.dir[i].u = u[i];
        p.dir[i].delta = delta[i];
        p.dir[i].A = A[i];
        p.dir[i].B = B[i];
        p.dir[i].C = C[i];
        p.dir[i].D = D[i];
        p.dir[i].z = z[i];
        p.dir[i].deltaBias = deltaBias[i];
        p.dir[i].reverse = reverse[i] != 0;
        if (batchStrides)
        {
            p.dir[i].uBatchStride = batchStrides[5 * i + 0];
            p.dir[i].deltaBatchStride = batchStrides[5 * i + 1];
            p.dir[i].zBatchStride = batchStrides[5 * i + 2];
            p.dir[i].bBatchStride = batchStrides[5 * i + 3];
            p.dir[i].cBatchStride = batchStrides[5 * i + 4];
        }
    }
    auto validate = [workspaceBytes](vim::SelectiveScanParams const& q) -> char const* {
        if (char const* msg = vim::selectiveScanValidate(q))
            return msg;
        if (workspaceBytes < vim::selectiveScanWorkspaceSize(q))
            return "workspace too small (see vim_selective_scan_workspace_size)";
        return nullptr;
    };
    auto launch = [workspace, workspaceBytes](vim::SelectiveScanParams const& q, cudaStream_t s) {
        return vim::selectiveScanForward(q, workspace, workspaceBytes, s);
    };
    return checkedLaunch(p, validate, launch, stream);
}

//! Depthwise causal conv1d + SiLU of x (batch, dim, seqlen; rows rowStride apart, 0 = seqlen; batch
//! stride xBatchStride, 0 = dim * rowStride)
//! for the forward direction and, when outBwd is given, the backward direction of a Vim block (an
//! anti-causal conv with its own weights), in one pass over x. Weights (dim, width) fp32, biases
//! (dim) fp32 or null; outputs in x's dtype, rows rowStride apart, batches outBatchStride apart (0 =
//! dim * rowStride), tokens seqlen..(row's length - 1) written as 0 (see vim::CausalConvParams).
__attribute__((visibility("default"))) int vim_causal_conv1d_silu(int dtype, int batch, int dim, int seqlen, int width,
    int rowStride, void const* x, long long xBatchStride, float const* weightFwd, float const* biasFwd, void* outFwd,
    float const* weightBwd, float const* biasBwd, void* outBwd, long long outBatchStride, void* stream)
{
    vim::CausalConvParams p{};
    p.dtype = static_cast<vim::ScanDType>(dtype);
    p.batch = batch;
    p.dim = dim;
    p.seqlen = seqlen;
    p.width = width;
    p.rowStride = rowStride;
    p.x = x;
    p.xBatchStride = xBatchStride;
    p.outBatchStride = outBatchStride;
    p.weight[0] = weightFwd;
    p.bias[0] = biasFwd;
    p.out[0] = outFwd;
    p.weight[1] = weightBwd;
    p.bias[1] = biasBwd;
    p.out[1] = outBwd;
    return checkedLaunch(p, vim::causalConv1dSiluValidate, vim::causalConv1dSilu, stream);
}

//! residualOut = residualIn (or 0 when null) + float(h); out = T(residualOut * rsqrt(mean(residualOut^2) + eps)
//! * weight), row-wise over (rows, cols); residualOut may alias residualIn.
__attribute__((visibility("default"))) int vim_add_rms_norm(int dtype, long long rows, int cols, float eps, void const* h,
    float const* residualIn, float* residualOut, float const* weight, void* out, void* stream)
{
    vim::AddRmsNormParams p{};
    p.dtype = static_cast<vim::ScanDType>(dtype);
    p.rows = rows;
    p.cols = cols;
    p.eps = eps;
    p.h = h;
    p.residualIn = residualIn;
    p.residualOut = residualOut;
    p.weight = weight;
    p.out = out;
    return checkedLaunch(p, vim::addRmsNormValidate, vim::addRmsNorm, stream);
}

} // extern "C"
