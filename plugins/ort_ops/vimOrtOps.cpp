/*
 * ONNX Runtime custom-op library for the nodes `vim-deploy export` writes: domain `vim_deploy`, ops
 * VimSelectiveScan (8 inputs) and VimBiSelectiveScan (15 inputs), exactly the inputs, attributes
 * and type rules of the TensorRT plugin (vim_deploy/ops/schema.py): T = float32 / float16 /
 * bfloat16 for the activations, A / D / delta_bias float32, output y of type T. And
 * VimBiCausalConv1dSilu (`export --conv-impl op`; ONNX Runtime only so far): both directions'
 * depthwise causal conv1d + SiLU of a block in one pass, x (B, Dx, L) of type T (the op reads
 * channels 0..D-1: the x half of in_proj's output, in place), weights (D, W) and biases (D) float32,
 * outputs u_f, u_b (B, D, L) of type T (u_b: the conv of the flipped sequence, read in token order);
 * optional INT attribute seq_len: tokens at and past it are padding (read as zeros, outputs zero). onnxruntime's grouped Conv spends ~8 ms of a 23 ms vim_tiny b128 forward on an H200
 * in cuDNN (pad + direct kernel + bias); this op is one memory-bound kernel. And VimAddRmsNorm
 * (`export --norm-impl op`; ONNX Runtime only): a block's residual add + RMSNorm, h (..., C) of type T,
 * residual (..., C) and weight (C) float32, attribute epsilon; outputs out (T) and residual_out
 * (float32), the fast path's one-pass kernel instead of ~10 element-wise / reduce nodes.
 *
 * Kernels:
 *   - CPU execution provider: the plain C++ scan (selectiveScanCpu.h), rows split over ORT's
 *     intra-op thread pool where the runtime offers KernelContext_ParallelFor (ORT >= 1.17);
 *   - CUDA execution provider (built when nvcc is present): the CUDA core (selectiveScanKernel.h) on
 *     ORT's compute stream, its workspace from ORT's allocator, no host sync, no allocation outside
 *     ORT (CUDA-graph capturable).
 * One OrtCustomOp per (op, T, provider): ORT (>= 1.14) merges same-named ops of a domain into one
 * schema whose output type follows the inputs' types.
 *
 * Written against the C API only, at API version kAPI_VERSION (ORT 1.16): the library loads into
 * every ONNX Runtime from 1.16 on (JetPack 5's and 6's onnxruntime-gpu builds, current wheels).
 * Entry point: RegisterCustomOps (SessionOptions.register_custom_ops_library in Python,
 * RegisterCustomOpsLibrary in C/C++, `op_library_filename` in Triton's onnxruntime backend).
 *
 * Errors (bad attributes at session creation, bad shapes at run) come back as ORT statuses that
 * name the op, the node and the problem; nothing here throws across the C boundary or aborts.
 */
#include "onnxruntime_c_api.h"

#include "fmaExp2.cuh"
#include "selectiveScanCpu.h"
#include "selectiveScanParams.h"
#if VIM_ORT_WITH_CUDA
#include "addRmsNormKernel.h"
#include "causalConv1dKernel.h"
#include "selectiveScanKernel.h"
#endif

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace
{

using vim::ScanDType;
using vim::SelectiveScanParams;

//! The C API version this library is written against (ORT 1.16: CreateKernelV2 / KernelComputeV2,
//! KernelInfo_GetNodeName, KernelContext_GetAllocator). Newer runtimes serve older API versions.
constexpr uint32_t kAPI_VERSION = 16;
//! KernelContext_ParallelFor arrived with API 17; used when the runtime has it.
constexpr uint32_t kPARALLEL_FOR_API_VERSION = 17;

constexpr char const* kDOMAIN = "vim_deploy";
constexpr char const* kSCAN = "VimSelectiveScan";
constexpr char const* kBI_SCAN = "VimBiSelectiveScan";
constexpr char const* kCONV = "VimBiCausalConv1dSilu";
constexpr size_t kNB_CONV_INPUTS = 5;
constexpr int64_t kMAX_CONV_WIDTH = 8;
constexpr char const* kADD_NORM = "VimAddRmsNorm";
constexpr size_t kNB_ADD_NORM_INPUTS = 3;
constexpr int64_t kMAX_NORM_COLS = 2048; //!< the CUDA kernel's limit (one warp per row)

//! Which op a registered OrtCustomOp / kernel is (the scans differ further by `bidirectional`).
enum class Family
{
    kScan,
    kConv,
    kAddNorm
};
constexpr char const* kCUDA_EP = "CUDAExecutionProvider";
constexpr size_t kNB_INPUTS = 8;
constexpr size_t kNB_BI_INPUTS = 15;

OrtApi const* gApi = nullptr;          //!< API at kAPI_VERSION (set by RegisterCustomOps)
OrtApi const* gApiParallel = nullptr;  //!< API at kPARALLEL_FOR_API_VERSION, or null

//! Input positions of one direction's tensors (and z) in the two node forms.
struct DirIndex
{
    size_t u, delta, A, B, C, D, bias, z;
};
constexpr DirIndex kSINGLE{0, 1, 2, 3, 4, 5, 7, 6};
constexpr DirIndex kBI_FWD{0, 1, 2, 3, 4, 5, 6, 14};
constexpr DirIndex kBI_BWD{7, 8, 9, 10, 11, 12, 13, 14};

char const* const kSINGLE_NAMES[kNB_INPUTS] = {"u", "delta", "A", "B", "C", "D", "z", "delta_bias"};
char const* const kBI_NAMES[kNB_BI_INPUTS] = {"u_f", "delta_f", "A_f", "B_f", "C_f", "D_f", "delta_bias_f", "u_b",
    "delta_b", "A_b", "B_b", "C_b", "D_b", "delta_bias_b", "z"};
char const* const kCONV_NAMES[kNB_CONV_INPUTS] = {"x", "weight_f", "bias_f", "weight_b", "bias_b"};
char const* const kADD_NORM_NAMES[kNB_ADD_NORM_INPUTS] = {"h", "residual", "weight"};

bool isFp32Input(Family f, bool bi, size_t pos)
{
    if (f != Family::kScan)
        return pos >= 1; // conv: weights and biases; add-norm: residual and weight
    if (bi)
        return pos == 2 || pos == 5 || pos == 6 || pos == 9 || pos == 12 || pos == 13;
    return pos == 2 || pos == 5 || pos == 7;
}

ONNXTensorElementDataType onnxType(ScanDType t)
{
    switch (t)
    {
    case ScanDType::kHALF: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    case ScanDType::kBF16: return ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16;
    default: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    }
}

//! One registered op: its form, element type and provider. The OrtCustomOp base is what ORT sees.
struct VimOp : OrtCustomOp
{
    Family family{Family::kScan};
    bool bidirectional{false}; //!< scans only
    ScanDType dtype{ScanDType::kFLOAT};
    bool cuda{false};
};

//! A kernel: one node's attributes, checked at session creation.
struct Kernel
{
    Family family{Family::kScan};
    bool bidirectional{false};
    ScanDType dtype{ScanDType::kFLOAT};
    bool cuda{false};
    int64_t deltaSoftplus{1};
    int64_t reverse{0};
    float outScale{1.f};
    float epsilon{1e-5f}; //!< VimAddRmsNorm
    int64_t seqLen{0};    //!< VimBiCausalConv1dSilu: valid tokens (0 = all)
    std::string node;

    char const* opName() const
    {
        return family == Family::kConv ? kCONV : family == Family::kAddNorm ? kADD_NORM : bidirectional ? kBI_SCAN : kSCAN;
    }
    size_t nbInputs() const
    {
        return family == Family::kConv ? kNB_CONV_INPUTS
            : family == Family::kAddNorm ? kNB_ADD_NORM_INPUTS
            : bidirectional              ? kNB_BI_INPUTS
                                         : kNB_INPUTS;
    }
    char const* inputName(size_t i) const
    {
        return family == Family::kConv ? kCONV_NAMES[i]
            : family == Family::kAddNorm ? kADD_NORM_NAMES[i]
            : bidirectional              ? kBI_NAMES[i]
                                         : kSINGLE_NAMES[i];
    }
};

//! An error status "<op> node '<name>': <what>" (ORT prefixes its own context when it reports it).
OrtStatus* fail(Kernel const& k, std::string const& what, OrtErrorCode code = ORT_INVALID_ARGUMENT)
{
    std::string const msg = std::string(k.opName()) + " node '" + k.node + "': " + what;
    return gApi->CreateStatus(code, msg.c_str());
}

//! Release an OrtStatus and say whether it was an error.
bool failed(OrtStatus* s)
{
    if (s == nullptr)
        return false;
    gApi->ReleaseStatus(s);
    return true;
}

// ---- attributes ------------------------------------------------------------------------------
//! A required INT attribute in {0, 1}.
OrtStatus* readFlag(OrtKernelInfo const* info, Kernel const& k, char const* name, int64_t& out)
{
    if (failed(gApi->KernelInfoGetAttribute_int64(info, name, &out)))
    {
        float f = 0.f;
        if (!failed(gApi->KernelInfoGetAttribute_float(info, name, &f)))
            return fail(k, std::string("attribute '") + name + "' must be an INT, got a FLOAT");
        return fail(k, std::string("required INT attribute '") + name + "' is missing (0 or 1)");
    }
    if (out != 0 && out != 1)
        return fail(k, std::string("attribute '") + name + "' must be 0 or 1, got " + std::to_string(out));
    return nullptr;
}

OrtStatus* readScale(OrtKernelInfo const* info, Kernel const& k, char const* name, float& out)
{
    if (failed(gApi->KernelInfoGetAttribute_float(info, name, &out)))
    {
        int64_t i = 0;
        if (!failed(gApi->KernelInfoGetAttribute_int64(info, name, &i)))
            return fail(k, std::string("attribute '") + name + "' must be a FLOAT, got an INT");
        return fail(k, std::string("required FLOAT attribute '") + name + "' is missing");
    }
    if (!std::isfinite(out))
        return fail(k, std::string("attribute '") + name + "' must be finite");
    return nullptr;
}

//! An optional INT attribute >= 0 (absent: out keeps its default).
OrtStatus* readOptionalCount(OrtKernelInfo const* info, Kernel const& k, char const* name, int64_t& out)
{
    int64_t v = 0;
    if (failed(gApi->KernelInfoGetAttribute_int64(info, name, &v)))
    {
        float f = 0.f;
        if (!failed(gApi->KernelInfoGetAttribute_float(info, name, &f)))
            return fail(k, std::string("attribute '") + name + "' must be an INT, got a FLOAT");
        return nullptr;
    }
    if (v < 0 || v > std::numeric_limits<int32_t>::max())
        return fail(k, std::string("attribute '") + name + "' must be in 0.." + std::to_string(std::numeric_limits<int32_t>::max())
                + ", got " + std::to_string(v));
    out = v;
    return nullptr;
}

std::string nodeName(OrtKernelInfo const* info)
{
    size_t size = 0;
    if (failed(gApi->KernelInfo_GetNodeName(info, nullptr, &size)) || size == 0)
        return "";
    std::string name(size, '\0');
    if (failed(gApi->KernelInfo_GetNodeName(info, &name[0], &size)))
        return "";
    name.resize(std::strlen(name.c_str()));
    return name;
}

OrtStatus* ORT_API_CALL createKernel(OrtCustomOp const* op, OrtApi const* /*api*/, OrtKernelInfo const* info,
    void** kernel) noexcept
{
    try
    {
        auto const* vop = static_cast<VimOp const*>(op);
        auto k = new Kernel();
        k->family = vop->family;
        k->bidirectional = vop->bidirectional;
        k->dtype = vop->dtype;
        k->cuda = vop->cuda;
        k->node = nodeName(info);
        if (k->family == Family::kConv) // the width comes from the weights' shape; seq_len is optional
        {
            OrtStatus* s = readOptionalCount(info, *k, "seq_len", k->seqLen);
            if (s != nullptr)
            {
                delete k;
                return s;
            }
            *kernel = k;
            return nullptr;
        }
        if (k->family == Family::kAddNorm)
        {
            OrtStatus* s = readScale(info, *k, "epsilon", k->epsilon);
            if (s == nullptr && !(k->epsilon > 0.f))
                s = fail(*k, "attribute 'epsilon' must be > 0, got " + std::to_string(k->epsilon));
            if (s != nullptr)
            {
                delete k;
                return s;
            }
            *kernel = k;
            return nullptr;
        }
        OrtStatus* s = readFlag(info, *k, "delta_softplus", k->deltaSoftplus);
        if (s == nullptr)
            s = k->bidirectional ? readScale(info, *k, "out_scale", k->outScale)
                                 : readFlag(info, *k, "reverse", k->reverse);
        if (s != nullptr)
        {
            delete k;
            return s;
        }
        *kernel = k;
        return nullptr;
    }
    catch (std::exception const& e)
    {
        return gApi->CreateStatus(ORT_FAIL, e.what());
    }
}

void ORT_API_CALL destroyKernel(void* kernel) noexcept
{
    delete static_cast<Kernel*>(kernel);
}

// ---- inputs ----------------------------------------------------------------------------------
struct Tensor
{
    void* data{nullptr};
    std::vector<int64_t> dims;
};

OrtStatus* readInput(OrtKernelContext* ctx, Kernel const& k, size_t i, Tensor& t)
{
    OrtValue const* v = nullptr;
    if (failed(gApi->KernelContext_GetInput(ctx, i, &v)) || v == nullptr)
        return fail(k, std::string("input ") + std::to_string(i) + " (" + k.inputName(i) + ") is missing");
    OrtTensorTypeAndShapeInfo* info = nullptr;
    if (failed(gApi->GetTensorTypeAndShape(v, &info)))
        return fail(k, std::string("input ") + k.inputName(i) + " is not a tensor");
    size_t rank = 0;
    OrtStatus* s = gApi->GetDimensionsCount(info, &rank);
    if (s == nullptr)
    {
        t.dims.assign(rank, 0);
        s = gApi->GetDimensions(info, t.dims.data(), rank);
    }
    gApi->ReleaseTensorTypeAndShapeInfo(info);
    if (s != nullptr)
        return s;
    return gApi->GetTensorMutableData(const_cast<OrtValue*>(v), &t.data);
}

std::string shapeText(std::vector<int64_t> const& d)
{
    std::ostringstream os;
    os << "(";
    for (size_t i = 0; i < d.size(); ++i)
        os << (i ? ", " : "") << d[i];
    os << ")";
    return os.str();
}

//! Check every input's shape against u's (batch, dim, seqlen) and A's dstate; fill the sizes of p.
OrtStatus* checkShapes(Kernel const& k, std::vector<Tensor> const& in, SelectiveScanParams& p)
{
    auto bad = [&](size_t i, std::string const& want) {
        return fail(k, std::string("input ") + k.inputName(i) + " has shape " + shapeText(in[i].dims) + ", expected "
                + want);
    };
    std::vector<int64_t> const& u = in[0].dims;
    if (u.size() != 3)
        return bad(0, "(batch, dim, seqlen)");
    for (int64_t d : u)
        if (d > std::numeric_limits<int32_t>::max())
            return fail(k, "dimensions of u " + shapeText(u) + " exceed the int32 range");
    int32_t const nbDirs = k.bidirectional ? 2 : 1;
    DirIndex const& first = k.bidirectional ? kBI_FWD : kSINGLE;
    std::vector<int64_t> const& A0 = in[first.A].dims;
    if (A0.size() != 2 || A0[0] != u[1] || A0[1] < 1 || A0[1] > 256)
        return bad(first.A, "(dim, dstate) with dim = " + std::to_string(u[1]) + " and dstate in 1..256");
    int64_t const N = A0[1];
    std::string const bdl = shapeText(u);
    std::string const bnl = shapeText({u[0], N, u[2]});
    std::string const dvec = shapeText({u[1]});
    for (int32_t dir = 0; dir < nbDirs; ++dir)
    {
        DirIndex const& ix = k.bidirectional ? (dir == 0 ? kBI_FWD : kBI_BWD) : kSINGLE;
        for (size_t i : {ix.u, ix.delta, ix.z})
            if (in[i].dims != u)
                return bad(i, bdl + " (like " + k.inputName(ix.u) + ")");
        if (in[ix.A].dims != A0)
            return bad(ix.A, shapeText(A0));
        for (size_t i : {ix.B, ix.C})
            if (in[i].dims != std::vector<int64_t>{u[0], N, u[2]})
                return bad(i, bnl + " (batch, dstate, seqlen)");
        for (size_t i : {ix.D, ix.bias})
            if (in[i].dims != std::vector<int64_t>{u[1]})
                return bad(i, dvec + " (dim)");
    }
    p.batch = static_cast<int32_t>(u[0]);
    p.dim = static_cast<int32_t>(u[1]);
    p.seqlen = static_cast<int32_t>(u[2]);
    p.dstate = static_cast<int32_t>(N);
    return nullptr;
}

void fillDirections(Kernel const& k, std::vector<Tensor> const& in, SelectiveScanParams& p)
{
    p.dtype = k.dtype;
    p.deltaSoftplus = k.deltaSoftplus != 0;
    p.numDirections = k.bidirectional ? 2 : 1;
    p.outScale = k.bidirectional ? k.outScale : 1.f;
    for (int32_t dir = 0; dir < p.numDirections; ++dir)
    {
        DirIndex const& ix = k.bidirectional ? (dir == 0 ? kBI_FWD : kBI_BWD) : kSINGLE;
        vim::ScanDirection& d = p.dir[dir];
        d.u = in[ix.u].data;
        d.delta = in[ix.delta].data;
        d.A = static_cast<float const*>(in[ix.A].data);
        d.B = in[ix.B].data;
        d.C = in[ix.C].data;
        d.D = static_cast<float const*>(in[ix.D].data);
        d.z = in[ix.z].data;
        d.deltaBias = static_cast<float const*>(in[ix.bias].data);
        d.reverse = k.bidirectional ? (dir == 1) : (k.reverse != 0);
    }
}

// ---- compute ---------------------------------------------------------------------------------
//! Rows [begin, end) split over ORT's intra-op thread pool (KernelContext_ParallelFor, ORT >= 1.17), or
//! run here; `fn(begin, end)` must not throw (it runs on pool threads). ~rowsPerTask rows a task.
OrtStatus* parallelRows(OrtKernelContext* ctx, int64_t rows, int64_t rowsPerTask,
    std::function<void(int64_t, int64_t)> const& fn)
{
    struct Job
    {
        std::function<void(int64_t, int64_t)> const* fn;
        int64_t rows, per;
    } job{&fn, rows, rowsPerTask};
    int64_t const tasks = (rows + rowsPerTask - 1) / rowsPerTask;
    auto run = [](void* data, size_t i) {
        auto const* j = static_cast<Job const*>(data);
        int64_t const begin = static_cast<int64_t>(i) * j->per;
        int64_t const end = std::min(j->rows, begin + j->per);
        if (begin < end)
            (*j->fn)(begin, end);
    };
    if (gApiParallel != nullptr && tasks > 1)
        return gApiParallel->KernelContext_ParallelFor(ctx, run, static_cast<size_t>(tasks), 0, &job);
    for (int64_t i = 0; i < tasks; ++i)
        run(&job, static_cast<size_t>(i));
    return nullptr;
}

OrtStatus* computeCpu(OrtKernelContext* ctx, Kernel const& k, SelectiveScanParams const& p)
{
    if (char const* msg = vim::selectiveScanCpuValidate(p))
        return fail(k, msg);
    int64_t const rows = static_cast<int64_t>(p.batch) * p.dim;
    // ~16 rows a task keeps the per-task setup (B/C conversion) small against the scan itself
    std::atomic<char const*> error{nullptr};
    if (OrtStatus* s = parallelRows(ctx, rows, std::max<int64_t>(16, (rows + 4095) / 4096), [&](int64_t b, int64_t e) {
            if (char const* msg = vim::selectiveScanCpuRows(p, b, e))
                error = msg;
        }))
        return s;
    return error.load() ? fail(k, error.load()) : nullptr;
}

#if VIM_ORT_WITH_CUDA
OrtStatus* computeCuda(OrtKernelContext* ctx, Kernel const& k, SelectiveScanParams& p)
{
    if (p.batch > 65535)
        return fail(k, "batch " + std::to_string(p.batch) + " exceeds the CUDA kernel's limit of 65535");
    void* stream = nullptr;
    if (OrtStatus* s = gApi->KernelContext_GetGPUComputeStream(ctx, &stream))
        return s;
    if (char const* msg = vim::selectiveScanValidate(p))
        return fail(k, msg);
    size_t const bytes = vim::selectiveScanWorkspaceSize(p);
    void* workspace = nullptr;
    OrtAllocator* allocator = nullptr;
    if (bytes > 0)
    {
        int device = 0;
        cudaError_t const e = cudaGetDevice(&device);
        if (e != cudaSuccess)
            return fail(k, std::string("cudaGetDevice failed: ") + cudaGetErrorString(e), ORT_EP_FAIL);
        OrtMemoryInfo* memInfo = nullptr;
        if (OrtStatus* s = gApi->CreateMemoryInfo("Cuda", OrtDeviceAllocator, device, OrtMemTypeDefault, &memInfo))
            return s;
        OrtStatus* s = gApi->KernelContext_GetAllocator(ctx, memInfo, &allocator);
        gApi->ReleaseMemoryInfo(memInfo);
        if (s != nullptr)
            return s;
        if ((s = gApi->AllocatorAlloc(allocator, bytes, &workspace)) != nullptr)
        {
            gApi->ReleaseAllocator(allocator);
            return s;
        }
    }
    cudaError_t const err = vim::selectiveScanForward(p, workspace, bytes, static_cast<cudaStream_t>(stream));
    // Returned to ORT's arena right away, as ORT's own kernels do with scratch buffers: every later
    // user of this memory is queued behind this kernel on the same compute stream.
    if (workspace != nullptr)
        failed(gApi->AllocatorFree(allocator, workspace));
    if (allocator != nullptr)
        gApi->ReleaseAllocator(allocator);
    if (err != cudaSuccess)
        return fail(k, std::string("CUDA kernel launch failed: ") + cudaGetErrorString(err), ORT_EP_FAIL);
    return nullptr;
}
#endif

// ---- VimBiCausalConv1dSilu ------------------------------------------------------------------
//! silu(v) = v / (1 + e^-v) with the FMA-pipe exp (vectorizable; ~2e-7 relative).
inline float siluFma(float v)
{
    return v / (1.f + vim::fmaExp2(-v * vim::kLog2e));
}

//! The CPU form of the op: out_f[t] = silu(b_f + sum_k w_f[k] x[t-(W-1)+k]),
//! out_b[t] = silu(b_b + sum_k w_b[k] x[t+(W-1)-k]) (x = 0 outside 0..valid-1), fp32 arithmetic, rows
//! [begin, end) of the (batch x dim) grid; x has xDim >= dim channels a batch, rows of L tokens;
//! outputs past `valid` are zeros. Returns false when out of memory.
bool convCpuRows(ScanDType t, void const* x, float const* const w[2], float const* const bias[2], void* const out[2],
    int64_t begin, int64_t end, int64_t dim, int64_t xDim, int64_t L, int64_t valid, int64_t W) noexcept
{
    try
    {
        std::vector<float> row(static_cast<size_t>(L + 2 * (W - 1)), 0.f), yf(static_cast<size_t>(L), 0.f),
            yb(static_cast<size_t>(L), 0.f);
        for (int64_t r = begin; r < end; ++r)
        {
            int64_t const d = r % dim;
            int64_t const xRow = (r / dim) * xDim + d;
            vim::loadRow(t, x, xRow * L, static_cast<int32_t>(valid), row.data() + (W - 1));
            for (int64_t i = 0; i < valid; ++i)
            {
                float af = bias[0][d], ab = bias[1][d];
                for (int64_t k = 0; k < W; ++k)
                {
                    af += w[0][d * W + k] * row[static_cast<size_t>(i + k)];
                    ab += w[1][d * W + k] * row[static_cast<size_t>(i + 2 * (W - 1) - k)];
                }
                yf[static_cast<size_t>(i)] = af;
                yb[static_cast<size_t>(i)] = ab;
            }
            for (int64_t i = 0; i < valid; ++i)
            {
                yf[static_cast<size_t>(i)] = siluFma(yf[static_cast<size_t>(i)]);
                yb[static_cast<size_t>(i)] = siluFma(yb[static_cast<size_t>(i)]);
            }
            vim::storeRow(t, yf.data(), static_cast<int32_t>(L), out[0], r * L);
            vim::storeRow(t, yb.data(), static_cast<int32_t>(L), out[1], r * L);
        }
        return true;
    }
    catch (...)
    {
        return false;
    }
}

//! Both outputs of a two-output op (conv, add-norm), shaped like its first input.
OrtStatus* getTwoOutputs(OrtKernelContext* ctx, std::vector<int64_t> const& shape, void* out[2])
{
    for (size_t o = 0; o < 2; ++o)
    {
        OrtValue* v = nullptr;
        if (OrtStatus* s = gApi->KernelContext_GetOutput(ctx, o, shape.data(), shape.size(), &v))
            return s;
        if (OrtStatus* s = gApi->GetTensorMutableData(v, &out[o]))
            return s;
    }
    return nullptr;
}

OrtStatus* computeConv(OrtKernelContext* ctx, Kernel const& k, std::vector<Tensor> const& in)
{
    std::vector<int64_t> const& x = in[0].dims;
    if (x.size() != 3)
        return fail(k, "input x has shape " + shapeText(x) + ", expected (batch, dim, seqlen)");
    for (int64_t d : x)
        if (d > std::numeric_limits<int32_t>::max())
            return fail(k, "dimensions of x " + shapeText(x) + " exceed the int32 range");
    std::vector<int64_t> const& w = in[1].dims;
    if (w.size() != 2 || w[0] > x[1] || w[1] < 1 || w[1] > kMAX_CONV_WIDTH)
        return fail(k, "input weight_f has shape " + shapeText(w) + ", expected (dim, width) with dim <= "
                + std::to_string(x[1]) + " (the channels of x) and width in 1.." + std::to_string(kMAX_CONV_WIDTH));
    if (in[3].dims != w)
        return fail(k, "input weight_b has shape " + shapeText(in[3].dims) + ", expected " + shapeText(w)
                + " (like weight_f)");
    for (size_t i : {size_t{2}, size_t{4}})
        if (in[i].dims != std::vector<int64_t>{w[0]})
            return fail(k, std::string("input ") + kCONV_NAMES[i] + " has shape " + shapeText(in[i].dims)
                    + ", expected " + shapeText({w[0]}) + " (dim)");
    if (k.seqLen > x[2])
        return fail(k, "attribute seq_len = " + std::to_string(k.seqLen) + " exceeds the " + std::to_string(x[2])
                + " tokens of x");
    int64_t const valid = k.seqLen > 0 ? k.seqLen : x[2];
    void* out[2] = {nullptr, nullptr};
    if (OrtStatus* s = getTwoOutputs(ctx, {x[0], w[0], x[2]}, out))
        return s;
    if (x[0] == 0 || w[0] == 0 || x[2] == 0)
        return nullptr; // empty outputs: nothing to compute, no launch
    float const* weights[2] = {static_cast<float const*>(in[1].data), static_cast<float const*>(in[3].data)};
    float const* biases[2] = {static_cast<float const*>(in[2].data), static_cast<float const*>(in[4].data)};
#if VIM_ORT_WITH_CUDA
    if (k.cuda)
    {
        if (x[0] > 65535 || w[0] > 65535)
            return fail(k, "batch and dim must be <= 65535 for the CUDA kernel, got " + shapeText(x));
        void* stream = nullptr;
        if (OrtStatus* s = gApi->KernelContext_GetGPUComputeStream(ctx, &stream))
            return s;
        vim::CausalConvParams p{};
        p.dtype = k.dtype;
        p.batch = static_cast<int32_t>(x[0]);
        p.dim = static_cast<int32_t>(w[0]);
        p.seqlen = static_cast<int32_t>(valid);
        p.rowStride = static_cast<int32_t>(x[2]); // outputs past seqlen: zeros
        p.xBatchStride = x[1] * x[2];
        p.width = static_cast<int32_t>(w[1]);
        p.x = in[0].data;
        for (int i = 0; i < 2; ++i)
        {
            p.weight[i] = weights[i];
            p.bias[i] = biases[i];
            p.out[i] = out[i];
        }
        if (char const* msg = vim::causalConv1dSiluValidate(p))
            return fail(k, msg);
        cudaError_t const err = vim::causalConv1dSilu(p, static_cast<cudaStream_t>(stream));
        if (err != cudaSuccess)
            return fail(k, std::string("CUDA kernel launch failed: ") + cudaGetErrorString(err), ORT_EP_FAIL);
        return nullptr;
    }
#endif
    std::atomic<bool> ok{true};
    int64_t const dim = w[0], xDim = x[1], L = x[2], W = w[1];
    void const* xd = in[0].data;
    ScanDType const dtype = k.dtype;
    if (OrtStatus* s = parallelRows(ctx, x[0] * dim, 16, [&](int64_t b, int64_t e) {
            if (!convCpuRows(dtype, xd, weights, biases, out, b, e, dim, xDim, L, valid, W))
                ok = false;
        }))
        return s;
    return ok ? nullptr : fail(k, "out of host memory");
}

// ---- VimAddRmsNorm ---------------------------------------------------------------------------
//! The CPU form: residual_out = residual + float(h); out = T(residual_out * rsqrt(mean(r^2) + eps) * w),
//! rows [begin, end). Returns false when out of memory.
bool addNormCpuRows(ScanDType t, void const* h, float const* residual, float const* weight, float* residualOut,
    void* out, int64_t begin, int64_t end, int64_t cols, float eps) noexcept
{
    try
    {
        std::vector<float> v(static_cast<size_t>(cols));
        for (int64_t r = begin; r < end; ++r)
        {
            vim::loadRow(t, h, r * cols, static_cast<int32_t>(cols), v.data());
            float* res = residualOut + r * cols;
            float ss = 0.f;
            for (int64_t c = 0; c < cols; ++c)
            {
                res[c] = residual[r * cols + c] + v[static_cast<size_t>(c)];
                ss += res[c] * res[c];
            }
            float const rstd = 1.f / std::sqrt(ss / static_cast<float>(cols) + eps);
            for (int64_t c = 0; c < cols; ++c)
                v[static_cast<size_t>(c)] = res[c] * rstd * weight[c];
            vim::storeRow(t, v.data(), static_cast<int32_t>(cols), out, r * cols);
        }
        return true;
    }
    catch (...)
    {
        return false;
    }
}

OrtStatus* computeAddNorm(OrtKernelContext* ctx, Kernel const& k, std::vector<Tensor> const& in)
{
    std::vector<int64_t> const& h = in[0].dims;
    if (h.empty() || h.back() < 1 || h.back() > kMAX_NORM_COLS)
        return fail(k, "input h has shape " + shapeText(h) + ", expected (..., channels) with channels in 1.."
                + std::to_string(kMAX_NORM_COLS));
    if (in[1].dims != h)
        return fail(k, "input residual has shape " + shapeText(in[1].dims) + ", expected " + shapeText(h) + " (like h)");
    if (in[2].dims != std::vector<int64_t>{h.back()})
        return fail(k, "input weight has shape " + shapeText(in[2].dims) + ", expected " + shapeText({h.back()})
                + " (channels)");
    void* out[2] = {nullptr, nullptr};
    if (OrtStatus* s = getTwoOutputs(ctx, h, out))
        return s;
    int64_t const cols = h.back();
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < h.size(); ++i)
        rows *= h[i];
    if (rows == 0)
        return nullptr; // empty outputs: no launch
    auto const* residual = static_cast<float const*>(in[1].data);
    auto const* weight = static_cast<float const*>(in[2].data);
#if VIM_ORT_WITH_CUDA
    if (k.cuda)
    {
        void* stream = nullptr;
        if (OrtStatus* s = gApi->KernelContext_GetGPUComputeStream(ctx, &stream))
            return s;
        vim::AddRmsNormParams p{};
        p.dtype = k.dtype;
        p.rows = rows;
        p.cols = static_cast<int32_t>(cols);
        p.eps = k.epsilon;
        p.h = in[0].data;
        p.residualIn = residual;
        p.residualOut = static_cast<float*>(out[1]);
        p.weight = weight;
        p.out = out[0];
        if (char const* msg = vim::addRmsNormValidate(p))
            return fail(k, msg);
        cudaError_t const err = vim::addRmsNorm(p, static_cast<cudaStream_t>(stream));
        if (err != cudaSuccess)
            return fail(k, std::string("CUDA kernel launch failed: ") + cudaGetErrorString(err), ORT_EP_FAIL);
        return nullptr;
    }
#endif
    void const* hd = in[0].data;
    auto* resOut = static_cast<float*>(out[1]);
    void* o = out[0];
    ScanDType const dtype = k.dtype;
    float const eps = k.epsilon;
    std::atomic<bool> ok{true};
    if (OrtStatus* s = parallelRows(ctx, rows, 64, [&](int64_t b, int64_t e) {
            if (!addNormCpuRows(dtype, hd, residual, weight, resOut, o, b, e, cols, eps))
                ok = false;
        }))
        return s;
    return ok ? nullptr : fail(k, "out of host memory");
}

OrtStatus* ORT_API_CALL compute(void* kernel, OrtKernelContext* ctx) noexcept
{
    try
    {
        Kernel const& k = *static_cast<Kernel const*>(kernel);
        std::vector<Tensor> in(k.nbInputs());
        for (size_t i = 0; i < in.size(); ++i)
            if (OrtStatus* s = readInput(ctx, k, i, in[i]))
                return s;
        if (k.family == Family::kConv)
            return computeConv(ctx, k, in);
        if (k.family == Family::kAddNorm)
            return computeAddNorm(ctx, k, in);
        SelectiveScanParams p{};
        if (OrtStatus* s = checkShapes(k, in, p))
            return s;
        OrtValue* out = nullptr;
        std::vector<int64_t> const& shape = in[0].dims;
        if (OrtStatus* s = gApi->KernelContext_GetOutput(ctx, 0, shape.data(), shape.size(), &out))
            return s;
        if (p.batch == 0 || p.dim == 0 || p.seqlen == 0)
            return nullptr; // empty output: nothing to compute, no launch
        if (OrtStatus* s = gApi->GetTensorMutableData(out, &p.out))
            return s;
        fillDirections(k, in, p);
#if VIM_ORT_WITH_CUDA
        if (k.cuda)
            return computeCuda(ctx, k, p);
#endif
        return computeCpu(ctx, k, p);
    }
    catch (std::exception const& e)
    {
        return gApi->CreateStatus(ORT_FAIL, e.what());
    }
}

// ---- the op table ----------------------------------------------------------------------------
char const* ORT_API_CALL opName(OrtCustomOp const* op) noexcept
{
    auto const* v = static_cast<VimOp const*>(op);
    return v->family == Family::kConv ? kCONV : v->family == Family::kAddNorm ? kADD_NORM : v->bidirectional ? kBI_SCAN : kSCAN;
}

char const* ORT_API_CALL opProvider(OrtCustomOp const* op) noexcept
{
    return static_cast<VimOp const*>(op)->cuda ? kCUDA_EP : nullptr; // nullptr = CPU
}

size_t ORT_API_CALL opInputCount(OrtCustomOp const* op) noexcept
{
    auto const* v = static_cast<VimOp const*>(op);
    return v->family == Family::kConv ? kNB_CONV_INPUTS
        : v->family == Family::kAddNorm ? kNB_ADD_NORM_INPUTS
        : v->bidirectional              ? kNB_BI_INPUTS
                                        : kNB_INPUTS;
}

ONNXTensorElementDataType ORT_API_CALL opInputType(OrtCustomOp const* op, size_t i) noexcept
{
    auto const* v = static_cast<VimOp const*>(op);
    return isFp32Input(v->family, v->bidirectional, i) ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : onnxType(v->dtype);
}

size_t ORT_API_CALL opOutputCount(OrtCustomOp const* op) noexcept
{
    return static_cast<VimOp const*>(op)->family == Family::kScan ? 1 : 2;
}

ONNXTensorElementDataType ORT_API_CALL opOutputType(OrtCustomOp const* op, size_t i) noexcept
{
    auto const* v = static_cast<VimOp const*>(op);
    if (v->family == Family::kAddNorm && i == 1)
        return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; // residual_out
    return onnxType(v->dtype);
}

OrtCustomOpInputOutputCharacteristic ORT_API_CALL opRequired(OrtCustomOp const*, size_t) noexcept
{
    return INPUT_OUTPUT_REQUIRED;
}

OrtMemType ORT_API_CALL opInputMemory(OrtCustomOp const*, size_t) noexcept
{
    return OrtMemTypeDefault; // every input on the provider's device
}

int ORT_API_CALL opVariadicArity(OrtCustomOp const*) noexcept
{
    return 1;
}

int ORT_API_CALL opVariadicHomogeneity(OrtCustomOp const*) noexcept
{
    return 1;
}

VimOp makeOp(Family family, bool bidirectional, ScanDType dtype, bool cuda)
{
    VimOp op{};
    op.family = family;
    op.version = kAPI_VERSION;
    op.CreateKernel = nullptr; // the V2 callbacks below are used (API >= 16)
    op.GetName = opName;
    op.GetExecutionProviderType = opProvider;
    op.GetInputType = opInputType;
    op.GetInputTypeCount = opInputCount;
    op.GetOutputType = opOutputType;
    op.GetOutputTypeCount = opOutputCount;
    op.KernelCompute = nullptr;
    op.KernelDestroy = destroyKernel;
    op.GetInputCharacteristic = opRequired;
    op.GetOutputCharacteristic = opRequired;
    op.GetInputMemoryType = opInputMemory;
    op.GetVariadicInputMinArity = opVariadicArity;
    op.GetVariadicInputHomogeneity = opVariadicHomogeneity;
    op.GetVariadicOutputMinArity = opVariadicArity;
    op.GetVariadicOutputHomogeneity = opVariadicHomogeneity;
    op.CreateKernelV2 = createKernel;
    op.KernelComputeV2 = compute;
    op.bidirectional = bidirectional;
    op.dtype = dtype;
    op.cuda = cuda;
    return op;
}

std::vector<VimOp>& allOps()
{
    static std::vector<VimOp> ops = [] {
        std::vector<VimOp> v;
        for (bool cuda : {false, true})
        {
#if !VIM_ORT_WITH_CUDA
            if (cuda)
                continue;
#endif
            for (ScanDType t : {ScanDType::kFLOAT, ScanDType::kHALF, ScanDType::kBF16})
            {
                for (bool bi : {false, true})
                    v.push_back(makeOp(Family::kScan, bi, t, cuda));
                v.push_back(makeOp(Family::kConv, false, t, cuda));
                v.push_back(makeOp(Family::kAddNorm, false, t, cuda));
            }
        }
        return v;
    }();
    return ops;
}

//! Whether the runtime serves C API `version`: ORT 1.N serves API N (checked from its version string).
bool runtimeHasApi(OrtApiBase const* apiBase, uint32_t version)
{
    char const* v = apiBase->GetVersionString ? apiBase->GetVersionString() : nullptr;
    unsigned major = 0, minor = 0;
    if (v == nullptr || std::sscanf(v, "%u.%u", &major, &minor) != 2)
        return false;
    return major > 1 || (major == 1 && minor >= version);
}

std::mutex gDomainMutex;
OrtCustomOpDomain* gDomain = nullptr; //!< one domain for every session; lives as long as the library

} // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(
    OrtSessionOptions* options, OrtApiBase const* apiBase)
{
    if (apiBase == nullptr)
        return nullptr;
    OrtApi const* api = apiBase->GetApi(kAPI_VERSION);
    if (api == nullptr)
    {
        // an ONNX Runtime older than 1.16: say so through the oldest API, which every runtime serves
        OrtApi const* oldest = apiBase->GetApi(1);
        std::string const msg = std::string("libvim_ort_ops needs ONNX Runtime >= 1.16 (C API ") + std::to_string(kAPI_VERSION)
            + "), this runtime is " + (apiBase->GetVersionString ? apiBase->GetVersionString() : "older");
        return oldest ? oldest->CreateStatus(ORT_FAIL, msg.c_str()) : nullptr;
    }
    std::lock_guard<std::mutex> lock(gDomainMutex);
    gApi = api;
    // Ask for API 17 only from a runtime that has it: GetApi prints an error for versions it lacks.
    gApiParallel = runtimeHasApi(apiBase, kPARALLEL_FOR_API_VERSION) ? apiBase->GetApi(kPARALLEL_FOR_API_VERSION) : nullptr;
    if (gDomain == nullptr)
    {
        OrtCustomOpDomain* domain = nullptr;
        if (OrtStatus* s = api->CreateCustomOpDomain(kDOMAIN, &domain))
            return s;
        for (VimOp& op : allOps())
        {
            if (OrtStatus* s = api->CustomOpDomain_Add(domain, &op))
            {
                api->ReleaseCustomOpDomain(domain);
                return s;
            }
        }
        gDomain = domain;
    }
    return api->AddCustomOpDomain(options, gDomain);
}

//! Which providers this build serves ("CPU" or "CPU,CUDA"), for tools that load the library with
//! ctypes to report what they found.
extern "C" __attribute__((visibility("default"))) char const* vim_ort_ops_providers()
{
#if VIM_ORT_WITH_CUDA
    return "CPU,CUDA";
#else
    return "CPU";
#endif
}
