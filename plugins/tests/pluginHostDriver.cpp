/*
 * Plugin host test driver: loads libvim_trt_plugin.so the way TensorRT does and calls it in the
 * order, and with the arguments, TensorRT's builder and runtime use, compiled against TensorRT's
 * headers only (no TensorRT library). The adapter under test follows the headers: IPluginV3 for
 * TensorRT >= 10 (creators from getCreators, logger through setLoggerFinder), IPluginV2DynamicExt
 * for 8.x (creators registered at load through getPluginRegistry(), which this program provides
 * together with getLogger(), as libnvinfer would).
 *
 *   pluginHostDriver <libvim_trt_plugin.so> [--gpu]
 *
 * CPU part (this file): creators, fields (good, missing, unknown, mistyped, out of range, INT64
 * overflow), output types and shapes, the whole type x format matrix, configure with min/opt/max,
 * workspace, serialize -> runtime creation / deserialize, clone, attach, shape changes, and the
 * empty-tensor enqueue (batch 0 / L 0: success without a launch; it used to crash the host with
 * SIGFPE). With --gpu (a build with -DVIM_DRIVER_GPU, linked with cudart): the runtime plugin made
 * as a deserialized plan makes it (V3: fields -> createPlugin(RUNTIME) -> attachToContext ->
 * onShapeChange; V2: serialize -> deserializePlugin), enqueued on a non-blocking stream with the
 * workspace it asked for and NaN-poisoned outputs, for every activation type, batch 1 / 3 / 8 and
 * several lengths (chunked at L = 1500), against a float64 reference on the host.
 * Prints PASS / FAIL lines; the exit status is the number of failures.
 */
#include "NvInferRuntime.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace
{

int gFailures = 0;

void check(std::string const& what, bool ok, std::string const& detail = "")
{
    std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what.c_str(), detail.empty() ? "" : ": ", detail.c_str());
    gFailures += ok ? 0 : 1;
}

struct CapturingLogger : ILogger
{
    std::vector<std::string> errors;
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING)
            errors.emplace_back(msg);
    }
    std::string takeLast()
    {
        std::string last = errors.empty() ? "" : errors.back();
        errors.clear();
        return last;
    }
};
CapturingLogger gLogger;

//! A field list that owns its values.
struct Fields
{
    std::vector<PluginField> list;
    std::vector<std::vector<char>> storage;
    PluginFieldCollection fc{};

    template <typename T>
    Fields& add(char const* name, T value, PluginFieldType type, int32_t length = 1)
    {
        storage.emplace_back(sizeof(T) * static_cast<size_t>(std::max(length, 1)));
        for (int32_t i = 0; i < std::max(length, 1); ++i)
            std::memcpy(storage.back().data() + i * sizeof(T), &value, sizeof(T));
        list.emplace_back(name, storage.back().data(), type, length);
        return *this;
    }
    Fields& addString(char const* name, char const* s)
    {
        storage.emplace_back(s, s + std::strlen(s) + 1);
        list.emplace_back(name, storage.back().data(), PluginFieldType::kCHAR, static_cast<int32_t>(std::strlen(s)));
        return *this;
    }
    PluginFieldCollection const* get()
    {
        // storage may have moved while adding: point the fields at the final buffers
        for (size_t i = 0; i < list.size(); ++i)
            list[i].data = storage[i].data();
        fc.nbFields = static_cast<int32_t>(list.size());
        fc.fields = list.data();
        return &fc;
    }
};

//! A node's fields: delta_softplus 1 and reverse (single) or out_scale 0.5 (bidirectional).
Fields scanFields(bool bi, bool reverse)
{
    Fields f;
    f.add<int32_t>("delta_softplus", 1, PluginFieldType::kINT32);
    if (bi)
        f.add<float>("out_scale", 0.5f, PluginFieldType::kFLOAT32);
    else
        f.add<int32_t>("reverse", reverse ? 1 : 0, PluginFieldType::kINT32);
    return f;
}

Fields goodFields(bool bi)
{
    return scanFields(bi, true);
}

struct BadCase
{
    char const* label;
    Fields fields;
};

std::vector<BadCase> badFieldCases(bool bi)
{
    std::vector<BadCase> cases;
    char const* second = bi ? "out_scale" : "reverse";
    {
        Fields f;
        f.add<int32_t>("delta_softplus", 1, PluginFieldType::kINT32);
        cases.push_back({"missing second field", f});
    }
    {
        Fields f;
        if (bi)
            f.add<float>("out_scale", 0.5f, PluginFieldType::kFLOAT32);
        else
            f.add<int32_t>("reverse", 0, PluginFieldType::kINT32);
        cases.push_back({"missing delta_softplus", f});
    }
    {
        Fields f = goodFields(bi);
        f.add<int32_t>("revrese", 1, PluginFieldType::kINT32);
        cases.push_back({"unknown field", f});
    }
    {
        Fields f;
        f.add<float>("delta_softplus", 1.f, PluginFieldType::kFLOAT32);
        f.list.clear(), f.storage.clear();
        f.add<float>("delta_softplus", 1.f, PluginFieldType::kFLOAT32);
        if (bi)
            f.add<float>("out_scale", 0.5f, PluginFieldType::kFLOAT32);
        else
            f.add<int32_t>("reverse", 0, PluginFieldType::kINT32);
        cases.push_back({"delta_softplus of type FLOAT32", f});
    }
    {
        Fields f;
        f.add<int32_t>("delta_softplus", 2, PluginFieldType::kINT32);
        if (bi)
            f.add<float>("out_scale", 0.5f, PluginFieldType::kFLOAT32);
        else
            f.add<int32_t>("reverse", 0, PluginFieldType::kINT32);
        cases.push_back({"delta_softplus = 2", f});
    }
    {
        Fields f;
        f.add<int32_t>("delta_softplus", 1, PluginFieldType::kINT32, 2);
        if (bi)
            f.add<float>("out_scale", 0.5f, PluginFieldType::kFLOAT32);
        else
            f.add<int32_t>("reverse", 0, PluginFieldType::kINT32);
        cases.push_back({"delta_softplus of length 2", f});
    }
    if (bi)
    {
        Fields f;
        f.add<int32_t>("delta_softplus", 1, PluginFieldType::kINT32);
        f.add<float>("out_scale", INFINITY, PluginFieldType::kFLOAT32);
        cases.push_back({"out_scale = inf", f});
        Fields g;
        g.add<int32_t>("delta_softplus", 1, PluginFieldType::kINT32);
        g.add<double>("out_scale", 1e300, PluginFieldType::kFLOAT64);
        cases.push_back({"out_scale = 1e300 (FLOAT64 beyond float32)", g});
        Fields h;
        h.add<int32_t>("delta_softplus", 1, PluginFieldType::kINT32);
        h.add<int32_t>("out_scale", 1, PluginFieldType::kINT32);
        cases.push_back({"out_scale of type INT32", h});
    }
    else
    {
        Fields f;
        f.add<int32_t>("delta_softplus", 1, PluginFieldType::kINT32);
        f.add<int32_t>("reverse", 2, PluginFieldType::kINT32);
        cases.push_back({"reverse = 2", f});
#if NV_TENSORRT_MAJOR >= 10
        Fields g;
        g.add<int32_t>("delta_softplus", 1, PluginFieldType::kINT32);
        g.add<int64_t>("reverse", (int64_t{1} << 32) + 1, PluginFieldType::kINT64);
        cases.push_back({"reverse = 2^32+1 as INT64 (truncates to 1)", g});
#endif
    }
    (void) second;
    return cases;
}

//! Vim-tiny-like sizes: dim 384, dstate 16.
constexpr int64_t kDIM = 384;
constexpr int64_t kSTATE = 16;

Dims dims(std::initializer_list<int64_t> v)
{
    Dims d{};
    d.nbDims = static_cast<int32_t>(v.size());
    int32_t i = 0;
    for (int64_t x : v)
        d.d[i++] = x;
    return d;
}

//! The input shapes of one node form at batch b, length L (and the output last).
std::vector<Dims> shapes(bool bi, int64_t b, int64_t L, int64_t N = kSTATE, int64_t dim = kDIM)
{
    Dims const bdl = dims({b, dim, L}), dn = dims({dim, N}), bnl = dims({b, N, L}), d1 = dims({dim});
    std::vector<Dims> s = bi ? std::vector<Dims>{bdl, bdl, dn, bnl, bnl, d1, d1, bdl, bdl, dn, bnl, bnl, d1, d1, bdl}
                             : std::vector<Dims>{bdl, bdl, dn, bnl, bnl, d1, bdl, d1};
    s.push_back(bdl);
    return s;
}

bool isFp32Slot(bool bi, int32_t pos)
{
    return bi ? (pos == 2 || pos == 5 || pos == 6 || pos == 9 || pos == 12 || pos == 13) : (pos == 2 || pos == 5 || pos == 7);
}

std::vector<PluginTensorDesc> descs(bool bi, int64_t b, int64_t L, DataType t, int64_t dim = kDIM)
{
    std::vector<Dims> s = shapes(bi, b, L, kSTATE, dim);
    std::vector<PluginTensorDesc> d(s.size());
    for (size_t i = 0; i < s.size(); ++i)
    {
        d[i].dims = s[i];
        d[i].format = TensorFormat::kLINEAR;
        d[i].type = (i + 1 < s.size() && isFp32Slot(bi, static_cast<int32_t>(i))) ? DataType::kFLOAT : t;
        d[i].scale = 1.f;
    }
    return d;
}

std::vector<DataType> activationTypes()
{
#if NV_TENSORRT_MAJOR >= 9
    return {DataType::kFLOAT, DataType::kHALF, DataType::kBF16};
#else
    return {DataType::kFLOAT, DataType::kHALF};
#endif
}

//! The dynamic descs of a profile batch 1..8 at length L, as TensorRT hands them to configurePlugin
//! and getWorkspaceSize (the batch of `desc` is -1: dynamic).
std::vector<DynamicPluginTensorDesc> profile(bool bi, int64_t L, DataType t, int64_t dim = kDIM)
{
    std::vector<Dims> lo = shapes(bi, 1, L, kSTATE, dim), hi = shapes(bi, 8, L, kSTATE, dim);
    std::vector<DynamicPluginTensorDesc> dyn(lo.size());
    for (size_t i = 0; i < lo.size(); ++i)
    {
        dyn[i].desc.dims = hi[i];
        dyn[i].desc.dims.d[0] = lo[i].nbDims == 3 ? -1 : hi[i].d[0];
        dyn[i].desc.type = isFp32Slot(bi, static_cast<int32_t>(i)) && i + 1 < lo.size() ? DataType::kFLOAT : t;
        dyn[i].desc.format = TensorFormat::kLINEAR;
        dyn[i].min = lo[i];
#if NV_TENSORRT_MAJOR >= 10
        dyn[i].opt = hi[i]; // TensorRT 8.x's desc has min / max only
#endif
        dyn[i].max = hi[i];
    }
    return dyn;
}

//! Run `q(pos, descs)` over every position x type x format and compare with the contract.
template <typename Query>
void formatMatrix(std::string const& tag, bool bi, Query q)
{
    std::vector<DataType> const types = {DataType::kFLOAT, DataType::kHALF, DataType::kINT8, DataType::kINT32
#if NV_TENSORRT_MAJOR >= 9
        , DataType::kBF16
#endif
    };
    int32_t const nbIn = bi ? 15 : 8;
    int mismatches = 0, total = 0;
    std::string first;
    for (DataType u : activationTypes())
        for (int32_t pos = 0; pos <= nbIn; ++pos)
            for (DataType t : types)
                for (TensorFormat f : {TensorFormat::kLINEAR, TensorFormat::kCHW32})
                {
                    std::vector<PluginTensorDesc> d = descs(bi, 2, 197, u);
                    d[pos].type = t;
                    d[pos].format = f;
                    bool const isActivation = t == DataType::kFLOAT || t == DataType::kHALF
#if NV_TENSORRT_MAJOR >= 9
                        || t == DataType::kBF16
#endif
                        ;
                    bool const want = f == TensorFormat::kLINEAR
                        && (pos < nbIn && isFp32Slot(bi, pos) ? t == DataType::kFLOAT
                                                              : (pos == 0 ? isActivation : t == d[0].type));
                    ++total;
                    if (q(pos, d) != want)
                    {
                        if (mismatches++ == 0)
                            first = "pos " + std::to_string(pos) + " type " + std::to_string(static_cast<int>(t));
                    }
                }
    check(tag + ": supportsFormatCombination over " + std::to_string(total) + " (position, type, format) cases",
        mismatches == 0, mismatches ? std::to_string(mismatches) + " mismatches, first " + first : "");
}

} // namespace


#ifdef VIM_DRIVER_GPU
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#endif

namespace
{
bool gGpu = false;

#ifdef VIM_DRIVER_GPU
constexpr int64_t kGPU_DIM = 96; //!< channels of the GPU cases (small: the float64 reference runs on the host)

struct GpuCase
{
    DataType type;
    int64_t batch, length;
    bool reverse;
};

//! Every activation type x (batch, length) x direction; L = 1500 at batch 1 runs the chunked scan.
std::vector<GpuCase> gpuCases(bool bi)
{
    std::vector<GpuCase> cases;
    for (DataType t : activationTypes())
        for (auto bl : {std::pair<int64_t, int64_t>{1, 197}, {3, 64}, {8, 197}, {1, 1500}, {2, 1}})
            for (bool rev : {false, true})
                if (!(bi && rev))
                    cases.push_back({t, bl.first, bl.second, rev});
    return cases;
}

#define CUDA_OK(call)                                                                                                  \
    do                                                                                                                 \
    {                                                                                                                  \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess)                                                                                         \
        {                                                                                                              \
            check(std::string("CUDA call ") + #call, false, cudaGetErrorString(e_));                                   \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

//! Deterministic inputs in [-1, 1).
struct Lcg
{
    uint64_t s;
    float next()
    {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<float>((s >> 40) & 0xffffff) / 8388608.f - 1.f;
    }
};

size_t elemSize(DataType t)
{
    return t == DataType::kFLOAT ? 4 : 2;
}

//! Round to T and back (what the plugin reads), and the bytes T stores.
float roundTo(DataType t, float v, void* dst, size_t i)
{
    if (t == DataType::kHALF)
    {
        __half h = __float2half(v);
        static_cast<__half*>(dst)[i] = h;
        return __half2float(h);
    }
#if NV_TENSORRT_MAJOR >= 9
    if (t == DataType::kBF16)
    {
        __nv_bfloat16 h = __float2bfloat16(v);
        static_cast<__nv_bfloat16*>(dst)[i] = h;
        return __bfloat162float(h);
    }
#endif
    static_cast<float*>(dst)[i] = v;
    return v;
}

float readBack(DataType t, void const* src, size_t i)
{
    if (t == DataType::kHALF)
        return __half2float(static_cast<__half const*>(src)[i]);
#if NV_TENSORRT_MAJOR >= 9
    if (t == DataType::kBF16)
        return __bfloat162float(static_cast<__nv_bfloat16 const*>(src)[i]);
#endif
    return static_cast<float const*>(src)[i];
}

//! One direction's inputs on the host (rounded values in double for the reference).
struct HostDir
{
    std::vector<double> u, delta, A, B, C, D, bias;
};

void referenceScan(HostDir const& h, std::vector<double> const& z, int64_t b, int64_t dim, int64_t L, int64_t N,
    bool reverse, std::vector<double>& acc)
{
    std::vector<double> st(N);
    for (int64_t bb = 0; bb < b; ++bb)
        for (int64_t d = 0; d < dim; ++d)
        {
            std::fill(st.begin(), st.end(), 0.0);
            for (int64_t i = 0; i < L; ++i)
            {
                int64_t const t = reverse ? L - 1 - i : i;
                size_t const ix = (bb * dim + d) * L + t;
                double dt = h.delta[ix] + h.bias[d];
                dt = dt > 20 ? dt : std::log1p(std::exp(dt));
                double y = 0;
                for (int64_t n = 0; n < N; ++n)
                {
                    size_t const bn = (bb * N + n) * L + t;
                    st[n] = std::exp(dt * h.A[d * N + n]) * st[n] + dt * h.B[bn] * h.u[ix];
                    y += h.C[bn] * st[n];
                }
                y += h.D[d] * h.u[ix];
                acc[ix] += y * z[ix] / (1 + std::exp(-z[ix]));
            }
        }
}

//! Enqueue `enqueue(descs, inputs, outputs, workspace, stream)` on random data; compare with float64.
template <typename Enqueue>
void gpuCase(std::string const& tag, bool bi, DataType t, int64_t b, int64_t L, size_t workspaceBytes, float outScale,
    bool reverse, Enqueue enqueue)
{
    int64_t const dim = kGPU_DIM, N = kSTATE;
    int32_t const nbIn = bi ? 15 : 8;
    std::vector<PluginTensorDesc> d = descs(bi, b, L, t, dim);
    Lcg rng{static_cast<uint64_t>(b * 1000003 + L * 7 + static_cast<int>(t) + (bi ? 99 : 0))};
    std::vector<std::vector<char>> host(nbIn);
    std::vector<std::vector<double>> vals(nbIn);
    for (int32_t i = 0; i < nbIn; ++i)
    {
        size_t n = 1;
        for (int32_t k = 0; k < d[i].dims.nbDims; ++k)
            n *= static_cast<size_t>(d[i].dims.d[k]);
        host[i].resize(n * elemSize(d[i].type));
        vals[i].resize(n);
        bool const isA = bi ? (i == 2 || i == 9) : i == 2;
        bool const isDelta = bi ? (i == 1 || i == 8) : i == 1;
        for (size_t k = 0; k < n; ++k)
        {
            float v = rng.next();
            if (isA)
                v = -std::exp(v);
            if (isDelta)
                v = 0.5f * v - 1.f;
            vals[i][k] = roundTo(d[i].type, v, host[i].data(), k);
        }
    }
    std::vector<void*> dev(nbIn, nullptr);
    void* out = nullptr;
    void* ws = nullptr;
    cudaStream_t stream = nullptr;
    size_t const outBytes = static_cast<size_t>(b * dim * L) * elemSize(t);
    for (int32_t i = 0; i < nbIn; ++i)
    {
        CUDA_OK(cudaMalloc(&dev[i], std::max<size_t>(host[i].size(), 1)));
        CUDA_OK(cudaMemcpy(dev[i], host[i].data(), host[i].size(), cudaMemcpyHostToDevice));
    }
    CUDA_OK(cudaMalloc(&out, outBytes));
    CUDA_OK(cudaMemset(out, 0xff, outBytes)); // NaN in every type: an unwritten element fails
    if (workspaceBytes)
    {
        CUDA_OK(cudaMalloc(&ws, workspaceBytes));
        CUDA_OK(cudaMemset(ws, 0xff, workspaceBytes));
    }
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    std::vector<void const*> ins(dev.begin(), dev.end());
    void* outs[1] = {out};
    int32_t const rc = enqueue(d.data(), ins.data(), outs, ws, stream);
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(cudaGetLastError());
    std::vector<char> got(outBytes);
    CUDA_OK(cudaMemcpy(got.data(), out, outBytes, cudaMemcpyDeviceToHost));
    // float64 reference from the rounded inputs
    auto dir = [&](int32_t base, bool rev) {
        HostDir h{vals[base], vals[base + 1], vals[base + 2], vals[base + 3], vals[base + 4], vals[base + 5],
            bi ? vals[base + 6] : vals[7]};
        return std::make_pair(h, rev);
    };
    std::vector<double> const& z = vals[bi ? 14 : 6];
    std::vector<double> acc(static_cast<size_t>(b * dim * L), 0.0);
    if (bi)
    {
        auto f = dir(0, false), r = dir(7, true);
        referenceScan(f.first, z, b, dim, L, N, false, acc);
        referenceScan(r.first, z, b, dim, L, N, true, acc);
        for (double& v : acc)
            v *= outScale;
    }
    else
    {
        referenceScan(dir(0, reverse).first, z, b, dim, L, N, reverse, acc);
    }
    double num = 0, den = 0;
    bool finite = true;
    for (size_t k = 0; k < acc.size(); ++k)
    {
        double const y = readBack(t, got.data(), k);
        finite = finite && std::isfinite(y);
        num += (y - acc[k]) * (y - acc[k]);
        den += acc[k] * acc[k];
    }
    double const rel = std::sqrt(num / std::max(den, 1e-300));
    double const tol = t == DataType::kFLOAT ? 1e-5 : (t == DataType::kHALF ? 2e-3 : 1e-2);
    char buf[160];
    std::snprintf(buf, sizeof(buf), "rel err %.2e (tol %.0e), workspace %zu B", rel, tol, workspaceBytes);
    check(tag + ": GPU enqueue type " + std::to_string(static_cast<int>(t)) + " batch " + std::to_string(b) + " L "
            + std::to_string(L) + (bi ? "" : (reverse ? " reverse" : " forward")),
        rc == 0 && finite && rel <= tol, buf);
    for (void* p : dev)
        cudaFree(p);
    cudaFree(out);
    cudaFree(ws);
    cudaStreamDestroy(stream);
}
#endif
} // namespace

#if NV_TENSORRT_MAJOR >= 10
// ================================ IPluginV3 (TensorRT >= 10) ===================================
namespace
{

struct Finder : ILoggerFinder
{
    ILogger* findLogger() override
    {
        return &gLogger;
    }
};
Finder gFinder;

struct DriverExprBuilder : IExprBuilder
{
    DriverExprBuilder()
    {
        mImpl = nullptr; // our plugin passes u's expressions through; it builds none
    }
};


#ifdef VIM_DRIVER_GPU
void v3GpuCases(IPluginCreatorV3One* creator, bool bi, std::string const& tag)
{
    int32_t const nbIn = bi ? 15 : 8;
    for (GpuCase const& g : gpuCases(bi))
    {
        DataType const t = g.type;
        std::pair<int64_t, int64_t> const bl{g.batch, g.length};
        bool const rev = g.reverse;
        Fields f = scanFields(bi, rev);
        IPluginV3* built = creator->createPlugin("node", f.get(), TensorRTPhase::kBUILD);
        if (!built)
        {
            check(tag + ": GPU case plugin", false, gLogger.takeLast());
            continue;
        }
        auto* bcap = static_cast<IPluginV3OneBuild*>(built->getCapabilityInterface(PluginCapabilityType::kBUILD));
        std::vector<DynamicPluginTensorDesc> dyn = profile(bi, bl.second, t, kGPU_DIM);
        bcap->configurePlugin(dyn.data(), nbIn, &dyn[nbIn], 1);
        size_t const ws = bcap->getWorkspaceSize(dyn.data(), nbIn, &dyn[nbIn], 1);
        auto* brun = static_cast<IPluginV3OneRuntime*>(built->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        IPluginV3* runtime = creator->createPlugin("node", brun->getFieldsToSerialize(), TensorRTPhase::kRUNTIME);
        IPluginV3* ctx = runtime ? static_cast<IPluginV3OneRuntime*>(
                                       runtime->getCapabilityInterface(PluginCapabilityType::kRUNTIME))
                                       ->attachToContext(nullptr)
                                 : nullptr;
        if (!ctx)
        {
            check(tag + ": GPU case runtime plugin", false, gLogger.takeLast());
            delete runtime;
            delete built;
            continue;
        }
        auto* run = static_cast<IPluginV3OneRuntime*>(ctx->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        gpuCase(tag, bi, t, bl.first, bl.second, ws, 0.5f, rev,
            [&](PluginTensorDesc* d, void const* const* ins, void* const* outs, void* w, cudaStream_t s) {
                if (run->onShapeChange(d, nbIn, &d[nbIn], 1) != 0)
                    return -1;
                return run->enqueue(d, &d[nbIn], ins, outs, w, s);
            });
        delete ctx;
        delete runtime;
        delete built;
    }
}
#endif

void runV3(void* lib)
{
    using GetCreators = IPluginCreatorInterface* const* (*) (int32_t&);
    using SetFinder = void (*)(ILoggerFinder*);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
    auto setFinder = reinterpret_cast<SetFinder>(dlsym(lib, "setLoggerFinder"));
    check("V3: exports getCreators and setLoggerFinder", getCreators && setFinder);
    if (!getCreators || !setFinder)
        return;
    setFinder(&gFinder);
    int32_t nb = 0;
    IPluginCreatorInterface* const* creators = getCreators(nb);
    check("V3: two creators", nb == 2 && creators != nullptr);
    for (int32_t c = 0; c < nb; ++c)
    {
        auto* creator = static_cast<IPluginCreatorV3One*>(creators[c]);
        bool const bi = std::strcmp(creator->getPluginName(), "VimBiSelectiveScan") == 0;
        std::string const tag = std::string("V3 ") + creator->getPluginName();
        check(tag + ": name / version / namespace",
            (bi || std::strcmp(creator->getPluginName(), "VimSelectiveScan") == 0)
                && std::strcmp(creator->getPluginVersion(), "1") == 0 && creator->getPluginNamespace() != nullptr);
        PluginFieldCollection const* names = creator->getFieldNames();
        check(tag + ": advertises 2 fields", names && names->nbFields == 2);

        for (BadCase& bad : badFieldCases(bi))
        {
            gLogger.errors.clear();
            IPluginV3* p = creator->createPlugin("node", bad.fields.get(), TensorRTPhase::kBUILD);
            std::string const msg = gLogger.takeLast();
            check(tag + ": rejects " + bad.label, p == nullptr && !msg.empty(), p ? "accepted" : msg);
            delete p;
        }
        Fields ok = goodFields(bi);
        ok.addString("plugin_version", "1");
        IPluginV3* plugin = creator->createPlugin("node", ok.get(), TensorRTPhase::kBUILD);
        check(tag + ": createPlugin(BUILD) from a node's fields", plugin != nullptr, gLogger.takeLast());
        if (!plugin)
            continue;
        auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
        auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
        auto* run = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        check(tag + ": core / build / runtime capabilities", core && build && run);
        if (!core || !build || !run)
            continue;
        check(tag + ": getNbOutputs", build->getNbOutputs() == 1);
        int32_t const nbIn = bi ? 15 : 8;
        for (DataType t : activationTypes())
        {
            std::vector<DataType> in(nbIn, t);
            DataType outT = DataType::kINT8;
            check(tag + ": output type follows u (" + std::to_string(static_cast<int>(t)) + ")",
                build->getOutputDataTypes(&outT, 1, in.data(), nbIn) == 0 && outT == t);
        }
        {
            std::vector<DataType> in(nbIn, DataType::kINT8);
            DataType outT{};
            check(tag + ": int8 u refused", build->getOutputDataTypes(&outT, 1, in.data(), nbIn) != 0);
            gLogger.errors.clear();
        }
        {
            // DimsExprs: the plugin passes u's expressions through; distinct dummy pointers show which
            std::vector<DimsExprs> in(nbIn);
            static char tokens[3];
            for (auto& e : in)
            {
                e.nbDims = 3;
                for (int32_t i = 0; i < 3; ++i)
                    e.d[i] = reinterpret_cast<IDimensionExpr const*>(&tokens[i]);
            }
            DimsExprs out{};
            DriverExprBuilder eb;
            bool const okShape = build->getOutputShapes(in.data(), nbIn, nullptr, 0, &out, 1, eb) == 0 && out.nbDims == 3
                && out.d[0] == in[0].d[0] && out.d[2] == in[0].d[2];
            check(tag + ": output shape = u's (batch, dim, seqlen)", okShape);
        }
        formatMatrix(tag, bi, [&](int32_t pos, std::vector<PluginTensorDesc> const& d) {
            std::vector<DynamicPluginTensorDesc> dd(d.size());
            for (size_t i = 0; i < d.size(); ++i)
                dd[i].desc = d[i];
            bool const r = build->supportsFormatCombination(pos, dd.data(), nbIn, 1);
            gLogger.errors.clear();
            return r;
        });
        // configure with a profile batch 1..8, L 6085 (min / opt / max), then the workspace
        std::vector<DynamicPluginTensorDesc> dyn = profile(bi, 6085, DataType::kHALF);
        check(tag + ": configurePlugin(min/opt/max)", build->configurePlugin(dyn.data(), nbIn, &dyn[nbIn], 1) == 0,
            gLogger.takeLast());
        size_t const ws = build->getWorkspaceSize(dyn.data(), nbIn, &dyn[nbIn], 1);
        check(tag + ": workspace for L = 6085, batch 1..8 (chunked scan) > 0", ws > 0, std::to_string(ws));
        {
            std::vector<DynamicPluginTensorDesc> bad = dyn;
            bad[3].desc.dims.nbDims = 2;
            check(tag + ": configurePlugin rejects a rank-2 B", build->configurePlugin(bad.data(), nbIn, &bad[nbIn], 1) != 0);
            gLogger.errors.clear();
        }
        // serialize -> runtime creation (what deserializing a plan does), clone, attach, shapes
        PluginFieldCollection const* ser = run->getFieldsToSerialize();
        IPluginV3* runtime = ser ? creator->createPlugin("node", ser, TensorRTPhase::kRUNTIME) : nullptr;
        check(tag + ": getFieldsToSerialize -> createPlugin(RUNTIME)", runtime != nullptr, gLogger.takeLast());
        if (runtime)
        {
            auto* rrun = static_cast<IPluginV3OneRuntime*>(runtime->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
            PluginFieldCollection const* again = rrun->getFieldsToSerialize();
            bool same = again && again->nbFields == ser->nbFields;
            for (int32_t i = 0; same && i < again->nbFields; ++i)
                same = std::strcmp(again->fields[i].name, ser->fields[i].name) == 0
                    && std::memcmp(again->fields[i].data, ser->fields[i].data, 4) == 0;
            check(tag + ": fields survive the round trip", same);
            IPluginV3* cloned = runtime->clone();
            IPluginV3* attached = cloned ? static_cast<IPluginV3OneRuntime*>(
                                               cloned->getCapabilityInterface(PluginCapabilityType::kRUNTIME))
                                               ->attachToContext(nullptr)
                                         : nullptr;
            check(tag + ": clone + attachToContext", cloned && attached);
            IPluginV3* ctx = attached ? attached : runtime;
            auto* crun = static_cast<IPluginV3OneRuntime*>(ctx->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
            for (int64_t b : {int64_t{1}, int64_t{3}, int64_t{8}})
            {
                std::vector<PluginTensorDesc> d = descs(bi, b, 197, DataType::kHALF);
                check(tag + ": onShapeChange batch " + std::to_string(b), crun->onShapeChange(d.data(), nbIn, &d[nbIn], 1) == 0,
                    gLogger.takeLast());
            }
            {
                std::vector<PluginTensorDesc> d = descs(bi, 2, 197, DataType::kHALF);
                d[3].dims.d[1] = 8; // B with another dstate
                check(tag + ": onShapeChange rejects B of another dstate",
                    crun->onShapeChange(d.data(), nbIn, &d[nbIn], 1) != 0 && !gLogger.takeLast().empty());
            }
            for (auto bl : {std::pair<int64_t, int64_t>{0, 197}, std::pair<int64_t, int64_t>{2, 0}})
            {
                std::vector<PluginTensorDesc> d = descs(bi, bl.first, bl.second, DataType::kHALF);
                std::vector<void const*> ins(nbIn, nullptr);
                void* outs[1] = {nullptr};
                int32_t const rc = crun->enqueue(d.data(), &d[nbIn], ins.data(), outs, nullptr, nullptr);
                check(tag + ": enqueue of an empty tensor (batch " + std::to_string(bl.first) + ", L "
                        + std::to_string(bl.second) + ") succeeds without a launch",
                    rc == 0, gLogger.takeLast());
            }
            delete cloned;
            delete attached;
            delete runtime;
        }
        // a null logger finder keeps the working logger
        setFinder(nullptr);
        Fields bad;
        bad.add<int32_t>("delta_softplus", 7, PluginFieldType::kINT32);
        IPluginV3* none = creator->createPlugin("node", bad.get(), TensorRTPhase::kBUILD);
        check(tag + ": setLoggerFinder(nullptr) keeps the logger", none == nullptr && !gLogger.takeLast().empty());
        setFinder(&gFinder);
#ifdef VIM_DRIVER_GPU
        if (gGpu)
            v3GpuCases(creator, bi, tag);
#endif
        delete plugin;
    }
}

} // namespace
#else
// ============================ IPluginV2DynamicExt (TensorRT 8.x) ================================
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" // IPluginV2 is deprecated in TensorRT 8's own headers

namespace
{

//! What libnvinfer's plugin registry would record at the library's load.
struct RecordingRegistry : IPluginRegistry
{
    std::vector<IPluginCreator*> creators;
    bool registerCreator(IPluginCreator& creator, AsciiChar const* const) noexcept override
    {
        creators.push_back(&creator);
        return true;
    }
    IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept override
    {
        *n = static_cast<int32_t>(creators.size());
        return creators.data();
    }
    IPluginCreator* getPluginCreator(AsciiChar const* const name, AsciiChar const* const version,
        AsciiChar const* const = "") noexcept override
    {
        for (IPluginCreator* c : creators)
            if (std::strcmp(c->getPluginName(), name) == 0 && std::strcmp(c->getPluginVersion(), version) == 0)
                return c;
        return nullptr;
    }
    void setErrorRecorder(IErrorRecorder* const) noexcept override {}
    IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return nullptr;
    }
    bool deregisterCreator(IPluginCreator const&) noexcept override
    {
        return false;
    }
#if NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6
    bool isParentSearchEnabled() const override
    {
        return false;
    }
    void setParentSearchEnabled(bool const) override {}
    PluginLibraryHandle loadLibrary(AsciiChar const*) noexcept override
    {
        return nullptr;
    }
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
#endif
};
RecordingRegistry gRegistry;


#ifdef VIM_DRIVER_GPU
void v2GpuCases(IPluginCreator* creator, bool bi, std::string const& tag)
{
    int32_t const nbIn = bi ? 15 : 8;
    for (GpuCase const& g : gpuCases(bi))
    {
        DataType const t = g.type;
        std::pair<int64_t, int64_t> const bl{g.batch, g.length};
        bool const rev = g.reverse;
        Fields f = scanFields(bi, rev);
        auto* built = static_cast<IPluginV2DynamicExt*>(creator->createPlugin("node", f.get()));
        if (!built)
        {
            check(tag + ": GPU case plugin", false, gLogger.takeLast());
            continue;
        }
        std::vector<char> blob(built->getSerializationSize());
        built->serialize(blob.data());
        auto* plugin = static_cast<IPluginV2DynamicExt*>(creator->deserializePlugin("node", blob.data(), blob.size()));
        if (!plugin)
        {
            check(tag + ": GPU case deserialize", false, gLogger.takeLast());
            built->destroy();
            continue;
        }
        std::vector<PluginTensorDesc> maxDesc = descs(bi, 8, bl.second, t, kGPU_DIM);
        size_t const ws = plugin->getWorkspaceSize(maxDesc.data(), nbIn, &maxDesc[nbIn], 1);
        plugin->initialize();
        gpuCase(tag, bi, t, bl.first, bl.second, ws, 0.5f, rev,
            [&](PluginTensorDesc* d, void const* const* ins, void* const* outs, void* w, cudaStream_t s) {
                return plugin->enqueue(d, &d[nbIn], ins, outs, w, s);
            });
        plugin->terminate();
        plugin->destroy();
        built->destroy();
    }
}
#endif

void runV2(void* lib)
{
    check("V2: both creators registered with libnvinfer's registry at load", gRegistry.creators.size() == 2);
    using GetCreators = IPluginCreator* const* (*) (int32_t*);
    auto get = reinterpret_cast<GetCreators>(dlsym(lib, "vimGetPluginCreatorsV2"));
    int32_t nb = 0;
    IPluginCreator* const* creators = get ? get(&nb) : nullptr;
    check("V2: vimGetPluginCreatorsV2 gives the same two creators",
        creators && nb == 2 && gRegistry.creators.size() == 2 && creators[0] == gRegistry.creators[0]
            && creators[1] == gRegistry.creators[1]);
    if (!creators)
        return;
    for (int32_t c = 0; c < nb; ++c)
    {
        IPluginCreator* creator = creators[c];
        bool const bi = std::strcmp(creator->getPluginName(), "VimBiSelectiveScan") == 0;
        std::string const tag = std::string("V2 ") + creator->getPluginName();
        check(tag + ": version 1, 2 fields", std::strcmp(creator->getPluginVersion(), "1") == 0
                && creator->getFieldNames() && creator->getFieldNames()->nbFields == 2);
        for (BadCase& bad : badFieldCases(bi))
        {
            gLogger.errors.clear();
            IPluginV2* p = creator->createPlugin("node", bad.fields.get());
            std::string const msg = gLogger.takeLast();
            check(tag + ": rejects " + bad.label, p == nullptr && !msg.empty(), p ? "accepted" : msg);
            if (p)
                p->destroy();
        }
        Fields ok = goodFields(bi);
        auto* plugin = static_cast<IPluginV2DynamicExt*>(creator->createPlugin("node", ok.get()));
        check(tag + ": createPlugin from a node's fields", plugin != nullptr, gLogger.takeLast());
        if (!plugin)
            continue;
        int32_t const nbIn = bi ? 15 : 8;
        check(tag + ": type / version / outputs", std::strcmp(plugin->getPluginType(), creator->getPluginName()) == 0
                && std::strcmp(plugin->getPluginVersion(), "1") == 0 && plugin->getNbOutputs() == 1);
        for (DataType t : activationTypes())
        {
            std::vector<DataType> in(nbIn, t);
            check(tag + ": output type follows u", plugin->getOutputDataType(0, in.data(), nbIn) == t);
        }
        formatMatrix(tag, bi, [&](int32_t pos, std::vector<PluginTensorDesc> const& d) {
            bool const r = plugin->supportsFormatCombination(pos, d.data(), nbIn, 1);
            gLogger.errors.clear();
            return r;
        });
        std::vector<DynamicPluginTensorDesc> dyn = profile(bi, 6085, DataType::kHALF);
        gLogger.errors.clear();
        plugin->configurePlugin(dyn.data(), nbIn, &dyn[nbIn], 1);
        check(tag + ": configurePlugin(min/max) logs no error", gLogger.errors.empty(), gLogger.takeLast());
        std::vector<PluginTensorDesc> maxDesc = descs(bi, 8, 6085, DataType::kHALF);
        size_t const ws = plugin->getWorkspaceSize(maxDesc.data(), nbIn, &maxDesc[nbIn], 1);
        check(tag + ": workspace for L = 6085, batch <= 8 > 0", ws > 0, std::to_string(ws));
        check(tag + ": initialize", plugin->initialize() == 0);
        std::vector<char> blob(plugin->getSerializationSize());
        plugin->serialize(blob.data());
        IPluginV2* back = creator->deserializePlugin("node", blob.data(), blob.size());
        check(tag + ": serialize -> deserializePlugin", back != nullptr, gLogger.takeLast());
        if (back)
        {
            std::vector<char> blob2(back->getSerializationSize());
            back->serialize(blob2.data());
            check(tag + ": fields survive the round trip", blob == blob2);
            back->destroy();
        }
        {
            IPluginV2* cut = creator->deserializePlugin("node", blob.data(), blob.size() - 1);
            std::vector<char> bad = blob;
            bad[0] ^= 0x5a;
            IPluginV2* wrong = creator->deserializePlugin("node", bad.data(), bad.size());
            IPluginV2* other = creators[1 - c]->deserializePlugin("node", blob.data(), blob.size());
            check(tag + ": truncated / corrupted / other-form blobs are refused",
                !cut && !wrong && !other && !gLogger.takeLast().empty());
        }
        IPluginV2DynamicExt* cloned = plugin->clone();
        check(tag + ": clone", cloned != nullptr);
        for (auto bl : {std::pair<int64_t, int64_t>{0, 197}, std::pair<int64_t, int64_t>{2, 0}})
        {
            std::vector<PluginTensorDesc> d = descs(bi, bl.first, bl.second, DataType::kHALF);
            std::vector<void const*> ins(nbIn, nullptr);
            void* outs[1] = {nullptr};
            int32_t const rc = (cloned ? cloned : plugin)->enqueue(d.data(), &d[nbIn], ins.data(), outs, nullptr, nullptr);
            check(tag + ": enqueue of an empty tensor (batch " + std::to_string(bl.first) + ", L "
                    + std::to_string(bl.second) + ") succeeds without a launch",
                rc == 0, gLogger.takeLast());
        }
        {
            std::vector<PluginTensorDesc> d = descs(bi, 2, 197, DataType::kHALF);
            d[3].dims.d[1] = 8;
            std::vector<void const*> ins(nbIn, nullptr);
            void* outs[1] = {nullptr};
            check(tag + ": enqueue rejects B of another dstate before any launch",
                plugin->enqueue(d.data(), &d[nbIn], ins.data(), outs, nullptr, nullptr) != 0 && !gLogger.takeLast().empty());
        }
        if (cloned)
            cloned->destroy();
        plugin->terminate();
        plugin->destroy();
#ifdef VIM_DRIVER_GPU
        if (gGpu)
            v2GpuCases(creator, bi, tag);
#endif
    }
}

} // namespace

// libnvinfer's C entry points, as the plugin library sees them once libnvinfer is loaded
extern "C" __attribute__((visibility("default"))) IPluginRegistry* getPluginRegistry() noexcept
{
    return &gRegistry;
}
extern "C" __attribute__((visibility("default"))) ILogger* getLogger() noexcept
{
    return &gLogger;
}
#pragma GCC diagnostic pop
#endif

int main(int argc, char** argv)
{
    gGpu = argc == 3 && std::strcmp(argv[2], "--gpu") == 0;
    if (argc != 2 && !gGpu)
    {
        std::fprintf(stderr, "usage: %s <libvim_trt_plugin.so> [--gpu]\n", argv[0]);
        return 2;
    }
#ifndef VIM_DRIVER_GPU
    if (gGpu)
    {
        std::fprintf(stderr, "this driver was built without -DVIM_DRIVER_GPU\n");
        return 2;
    }
#endif
    std::setvbuf(stdout, nullptr, _IOLBF, 0); // every line out before a crash, if the plugin crashes
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
    {
        std::fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror());
        return 2;
    }
    std::printf("TensorRT headers %d.%d: %s adapter\n", NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR,
        NV_TENSORRT_MAJOR >= 10 ? "IPluginV3" : "IPluginV2DynamicExt");
#if NV_TENSORRT_MAJOR >= 10
    runV3(lib);
#else
    runV2(lib);
#endif
    std::printf("%d failure(s)\n", gFailures);
    return gFailures;
}
