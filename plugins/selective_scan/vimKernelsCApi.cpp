/*
 * C ABI of the TensorRT-free kernel library (libvim_kernels.so), for ctypes and other FFIs.
 * Flat arguments only (no structs cross the boundary); 0 = success, else a cudaError_t value or -1
 * for invalid arguments, with a message from vim_last_error().
 */
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
} // namespace

extern "C"
{

__attribute__((visibility("default"))) int vim_kernels_abi_version()
{
    return 2; // 2: lanesPerChannel argument
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

//! Direction i uses u[i], delta[i], A[i], B[i], C[i], D[i], z[i], deltaBias[i], reverse[i] (arrays of 2).
__attribute__((visibility("default"))) int vim_selective_scan_fwd(int dtype, int batch, int dim, int seqlen,
    int dstate, int deltaSoftplus, int numDirections, void const* const* u, void const* const* delta,
    float const* const* A, void const* const* B, void const* const* C, float const* const* D,
    void const* const* z, float const* const* deltaBias, int const* reverse, float outScale, void* out,
    int numChunks, int lanesPerChannel, void* workspace, size_t workspaceBytes, void* stream)
{
    if (dtype < 0 || dtype > 2)
    {
        gLastError = "dtype must be 0 (fp32), 1 (fp16) or 2 (bf16)";
        return -1;
    }
    vim::SelectiveScanParams p
        = makeParams(dtype, batch, dim, seqlen, dstate, deltaSoftplus, numDirections, numChunks, lanesPerChannel);
    p.outScale = outScale;
    p.out = out;
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
    }
    if (char const* msg = vim::selectiveScanValidate(p))
    {
        gLastError = msg;
        return -1;
    }
    if (workspaceBytes < vim::selectiveScanWorkspaceSize(p))
    {
        gLastError = "workspace too small (see vim_selective_scan_workspace_size)";
        return -1;
    }
    cudaError_t err = vim::selectiveScanForward(p, workspace, workspaceBytes, static_cast<cudaStream_t>(stream));
    if (err != cudaSuccess)
    {
        gLastError = std::string("CUDA error: ") + cudaGetErrorString(err);
        return static_cast<int>(err);
    }
    gLastError.clear();
    return 0;
}

} // extern "C"
