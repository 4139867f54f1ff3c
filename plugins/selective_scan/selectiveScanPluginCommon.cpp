/*
 * Shared TensorRT-facing logic of the scan plugin (see selectiveScanPluginCommon.h).
 */
#include "selectiveScanPluginCommon.h"

#include "selectiveScanKernel.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <vector>

using namespace nvinfer1;

namespace vim
{
namespace plugin
{
namespace
{

#define VIM_REQUIRE(cond, msg)                                                                                         \
    do                                                                                                                 \
    {                                                                                                                  \
        if (!(cond))                                                                                                   \
        {                                                                                                              \
            std::ostringstream os_;                                                                                    \
            os_ << msg;                                                                                                \
            throw std::invalid_argument(os_.str());                                                                    \
        }                                                                                                              \
    } while (0)

std::mutex gLoggerMutex;
LoggerSource gLoggerSource{nullptr};

//! Input positions of one direction's tensors (and z) in the two node forms.
struct DirIndex
{
    int32_t u, delta, A, B, C, D, bias, z;
};
constexpr DirIndex kSINGLE{0, 1, 2, 3, 4, 5, 7, 6};
constexpr DirIndex kBI_FWD{0, 1, 2, 3, 4, 5, 6, 14};
constexpr DirIndex kBI_BWD{7, 8, 9, 10, 11, 12, 13, 14};

DirIndex const& dirIndex(bool bi, int32_t k)
{
    return bi ? (k == 0 ? kBI_FWD : kBI_BWD) : kSINGLE;
}

bool isFp32Input(bool bi, int32_t pos)
{
    if (bi)
        return pos == 2 || pos == 5 || pos == 6 || pos == 9 || pos == 12 || pos == 13; // A, D, delta_bias x2
    return pos == 2 || pos == 5 || pos == 7;                                              // A, D, delta_bias
}

int32_t expectedRank(bool bi, int32_t pos)
{
    constexpr int32_t kSingle[kNB_INPUTS] = {3, 3, 2, 3, 3, 1, 3, 1};
    constexpr int32_t kBi[kNB_BI_INPUTS] = {3, 3, 2, 3, 3, 1, 1, 3, 3, 2, 3, 3, 1, 1, 3};
    return bi ? kBi[pos] : kSingle[pos];
}

bool isActivationType(DataType t)
{
#if NV_TENSORRT_MAJOR >= 9
    if (t == DataType::kBF16)
        return true;
#endif
    return t == DataType::kFLOAT || t == DataType::kHALF;
}

ScanDType toScanType(DataType t)
{
#if NV_TENSORRT_MAJOR >= 9
    if (t == DataType::kBF16)
        return ScanDType::kBF16;
#endif
    return t == DataType::kHALF ? ScanDType::kHALF : ScanDType::kFLOAT;
}

int64_t readInt(PluginField const& f)
{
    VIM_REQUIRE(f.data != nullptr && f.length == 1, "field '" << f.name << "' must hold exactly one value, got "
                                                              << f.length);
    switch (f.type)
    {
    case PluginFieldType::kINT32: return *static_cast<int32_t const*>(f.data);
    case PluginFieldType::kINT16: return *static_cast<int16_t const*>(f.data);
    case PluginFieldType::kINT8: return *static_cast<int8_t const*>(f.data);
#if NV_TENSORRT_MAJOR >= 10
    case PluginFieldType::kINT64: return *static_cast<int64_t const*>(f.data);
#endif
    default: break;
    }
    throw std::invalid_argument(std::string("field '") + f.name + "' must be an integer (kINT32)");
}

float readFloat(PluginField const& f)
{
    VIM_REQUIRE(f.data != nullptr && f.length == 1, "field '" << f.name << "' must hold exactly one value, got "
                                                              << f.length);
    if (f.type == PluginFieldType::kFLOAT32)
        return *static_cast<float const*>(f.data);
    if (f.type == PluginFieldType::kFLOAT64)
    {
        double const d = *static_cast<double const*>(f.data);
        VIM_REQUIRE(!std::isfinite(d) || std::fabs(d) <= std::numeric_limits<float>::max(),
            "field '" << f.name << "' = " << d << " overflows float32");
        return static_cast<float>(d);
    }
    throw std::invalid_argument(std::string("field '") + f.name + "' must be a float (kFLOAT32)");
}

int32_t readFlag(PluginField const& f)
{
    int64_t const v = readInt(f);
    VIM_REQUIRE(v == 0 || v == 1, "field '" << f.name << "' must be 0 or 1, got " << v);
    return static_cast<int32_t>(v);
}

} // namespace

void setLoggerSource(LoggerSource source)
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    if (source != nullptr)
        gLoggerSource = source;
}

void logMessage(ILogger::Severity severity, std::string const& msg)
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    ILogger* logger = gLoggerSource ? gLoggerSource() : nullptr;
    if (logger)
        logger->log(severity, ("[VimSelectiveScan] " + msg).c_str());
}

void logError(std::string const& msg)
{
    logMessage(ILogger::Severity::kERROR, msg);
}

ScanFields parseFields(bool bi, PluginFieldCollection const* fc)
{
    ScanFields out{};
    bool haveSoftplus = false, haveSecond = false;
    char const* second = bi ? "out_scale" : "reverse";
    VIM_REQUIRE(fc != nullptr, opNameOf(bi) << ": no fields given (needs delta_softplus and " << second << ")");
    VIM_REQUIRE(fc->nbFields >= 0 && (fc->nbFields == 0 || fc->fields != nullptr), "malformed field collection");
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        VIM_REQUIRE(f.name != nullptr, "field " << i << " has no name");
        if (std::strcmp(f.name, "delta_softplus") == 0)
        {
            out.deltaSoftplus = readFlag(f);
            haveSoftplus = true;
        }
        else if (!bi && std::strcmp(f.name, "reverse") == 0)
        {
            out.reverse = readFlag(f);
            haveSecond = true;
        }
        else if (bi && std::strcmp(f.name, "out_scale") == 0)
        {
            out.outScale = readFloat(f);
            VIM_REQUIRE(std::isfinite(out.outScale), "field 'out_scale' must be finite");
            haveSecond = true;
        }
        else if (std::strcmp(f.name, "plugin_version") == 0 || std::strcmp(f.name, "plugin_namespace") == 0)
        {
            VIM_REQUIRE(f.type == PluginFieldType::kCHAR, "field '" << f.name << "' must be a string");
        }
        else
        {
            throw std::invalid_argument(std::string(opNameOf(bi)) + ": unknown field '" + f.name
                + "' (fields: delta_softplus, " + second + ")");
        }
    }
    VIM_REQUIRE(haveSoftplus, opNameOf(bi) << ": required field 'delta_softplus' is missing");
    VIM_REQUIRE(haveSecond, opNameOf(bi) << ": required field '" << second << "' is missing");
    return out;
}

PluginFieldCollection const* fieldNames(bool bi)
{
    static std::vector<PluginField> const kSingle{
        PluginField("delta_softplus", nullptr, PluginFieldType::kINT32, 1),
        PluginField("reverse", nullptr, PluginFieldType::kINT32, 1)};
    static std::vector<PluginField> const kBi{PluginField("delta_softplus", nullptr, PluginFieldType::kINT32, 1),
        PluginField("out_scale", nullptr, PluginFieldType::kFLOAT32, 1)};
    static PluginFieldCollection const kSingleFc{static_cast<int32_t>(kSingle.size()), kSingle.data()};
    static PluginFieldCollection const kBiFc{static_cast<int32_t>(kBi.size()), kBi.data()};
    return bi ? &kBiFc : &kSingleFc;
}

void checkRanks(bool bi, DynamicPluginTensorDesc const* in, int32_t nbInputs, int32_t nbOutputs)
{
    VIM_REQUIRE(nbInputs == nbInputsOf(bi) && nbOutputs == kNB_OUTPUTS,
        opNameOf(bi) << " expects " << nbInputsOf(bi) << " inputs and 1 output, got " << nbInputs << " and "
                     << nbOutputs);
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        VIM_REQUIRE(in[i].desc.dims.nbDims == expectedRank(bi, i),
            "input " << i << " has rank " << in[i].desc.dims.nbDims << ", expected " << expectedRank(bi, i));
    }
}

void checkShapes(bool bi, PluginTensorDesc const* in, int32_t nbInputs)
{
    VIM_REQUIRE(nbInputs == nbInputsOf(bi), "wrong number of inputs: " << nbInputs);
    Dims const& u = in[0].dims;
    VIM_REQUIRE(u.nbDims == 3, "u must be (batch, dim, seqlen)");
    for (int32_t i = 0; i < 3; ++i)
        VIM_REQUIRE(u.d[i] >= 0 && u.d[i] <= std::numeric_limits<int32_t>::max(),
            "dimension " << i << " of u (" << u.d[i] << ") is outside 0..2^31-1");
    auto sameAsU = [&](int32_t i) {
        return in[i].dims.nbDims == 3 && in[i].dims.d[0] == u.d[0] && in[i].dims.d[1] == u.d[1]
            && in[i].dims.d[2] == u.d[2];
    };
    int32_t const nbDirs = bi ? 2 : 1;
    for (int32_t k = 0; k < nbDirs; ++k)
    {
        DirIndex const& ix = dirIndex(bi, k);
        for (int32_t i : {ix.u, ix.delta, ix.z})
            VIM_REQUIRE(sameAsU(i), "input " << i << " must have u's shape (batch, dim, seqlen)");
        Dims const& A = in[ix.A].dims;
        VIM_REQUIRE(A.nbDims == 2 && A.d[0] == u.d[1] && A.d[1] >= 1 && A.d[1] <= 256
                && A.d[1] == in[kSINGLE.A].dims.d[1],
            "input " << ix.A << " (A) must be (dim, dstate) with dstate in 1..256");
        for (int32_t i : {ix.B, ix.C})
            VIM_REQUIRE(in[i].dims.nbDims == 3 && in[i].dims.d[0] == u.d[0] && in[i].dims.d[1] == A.d[1]
                    && in[i].dims.d[2] == u.d[2],
                "input " << i << " must be (batch, dstate, seqlen)");
        for (int32_t i : {ix.D, ix.bias})
            VIM_REQUIRE(in[i].dims.nbDims == 1 && in[i].dims.d[0] == u.d[1], "input " << i << " must be (dim)");
    }
}

bool supportsFormat(bool bi, int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs)
{
    VIM_REQUIRE(nbInputs == nbInputsOf(bi) && nbOutputs == kNB_OUTPUTS && pos >= 0 && pos < nbInputs + nbOutputs,
        "bad position " << pos);
    PluginTensorDesc const& d = inOut[pos];
    if (d.format != TensorFormat::kLINEAR)
        return false;
    if (pos < nbInputs && isFp32Input(bi, pos))
        return d.type == DataType::kFLOAT;
    if (pos == 0)
        return isActivationType(d.type);
    return d.type == inOut[0].type; // the other activations and the output follow u
}

DataType outputType(DataType const* inputTypes, int32_t nbInputs, bool bi)
{
    VIM_REQUIRE(nbInputs == nbInputsOf(bi), "wrong number of inputs");
    VIM_REQUIRE(isActivationType(inputTypes[0]), "u must be fp32, fp16 or bf16");
    return inputTypes[0];
}

size_t workspaceBytes(bool bi, int64_t minBatch, int64_t maxBatch, int64_t dim, int64_t seqlen, int64_t dstate,
    int32_t smCount)
{
    VIM_REQUIRE(dim >= 0 && seqlen >= 0 && dstate >= 0 && maxBatch >= 0 && dim <= std::numeric_limits<int32_t>::max()
            && seqlen <= std::numeric_limits<int32_t>::max() && maxBatch <= std::numeric_limits<int32_t>::max(),
        "dimensions outside 0..2^31-1");
    SelectiveScanParams p{};
    p.dim = static_cast<int32_t>(dim);
    p.seqlen = static_cast<int32_t>(seqlen);
    p.dstate = static_cast<int32_t>(dstate);
    p.numDirections = bi ? 2 : 1;
    int sms = smCount;
    if (sms <= 0)
    {
        int device = 0;
        if (cudaGetDevice(&device) != cudaSuccess
            || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
            sms = 0;
        (void) cudaGetLastError(); // no GPU at build time (a CPU plan build) is not an error here
        sms = std::max(kWORKSPACE_SM_COUNT, sms);
    }
    p.smCount = sms;
    size_t need = 0;
    // chunking depends on batch: take the largest need over the profile's batches
    for (int64_t b = std::max<int64_t>(1, minBatch); b <= maxBatch; ++b)
    {
        p.batch = static_cast<int32_t>(b);
        need = std::max(need, selectiveScanWorkspaceSize(p));
    }
    return need;
}

void enqueueScan(bool bi, ScanFields const& fields, PluginTensorDesc const* inputDesc, void const* const* inputs,
    void* const* outputs, void* workspace, cudaStream_t stream)
{
    checkShapes(bi, inputDesc, nbInputsOf(bi));
    Dims const& u = inputDesc[0].dims;
    if (u.d[0] == 0 || u.d[1] == 0 || u.d[2] == 0)
        return; // empty tensors: nothing to compute, no launch
    SelectiveScanParams p{};
    p.batch = static_cast<int32_t>(u.d[0]);
    p.dim = static_cast<int32_t>(u.d[1]);
    p.seqlen = static_cast<int32_t>(u.d[2]);
    p.dstate = static_cast<int32_t>(inputDesc[2].dims.d[1]);
    p.dtype = toScanType(inputDesc[0].type);
    p.deltaSoftplus = fields.deltaSoftplus != 0;
    p.numDirections = bi ? 2 : 1;
    p.outScale = bi ? fields.outScale : 1.0f;
    for (int32_t k = 0; k < p.numDirections; ++k)
    {
        DirIndex const& ix = dirIndex(bi, k);
        ScanDirection& d = p.dir[k];
        d.u = inputs[ix.u];
        d.delta = inputs[ix.delta];
        d.A = static_cast<float const*>(inputs[ix.A]);
        d.B = inputs[ix.B];
        d.C = inputs[ix.C];
        d.D = static_cast<float const*>(inputs[ix.D]);
        d.z = inputs[ix.z];
        d.deltaBias = static_cast<float const*>(inputs[ix.bias]);
        d.reverse = bi ? (k == 1) : (fields.reverse != 0);
    }
    p.out = outputs[0];
    size_t const granted
        = workspace ? workspaceBytes(bi, p.batch, p.batch, p.dim, p.seqlen, p.dstate, kWORKSPACE_SM_COUNT) : 0;
    if (selectiveScanWorkspaceSize(p) > granted)
    {
        static std::atomic<bool> warned{false};
        if (!warned.exchange(true))
            logMessage(ILogger::Severity::kWARNING,
                "workspace of " + std::to_string(granted) + " bytes is smaller than this GPU's chunked scan needs ("
                    + std::to_string(selectiveScanWorkspaceSize(p)) + "); running unchunked (correct, slower)");
        p.numChunks = 1;
    }
    if (char const* msg = selectiveScanValidate(p))
        throw std::invalid_argument(msg);
    cudaError_t const err = selectiveScanForward(p, workspace, granted, stream);
    VIM_REQUIRE(err == cudaSuccess, "kernel launch failed: " << cudaGetErrorString(err));
}

namespace
{
constexpr uint32_t kSERIAL_MAGIC = 0x5653534d; // "MSSV"
constexpr uint32_t kSERIAL_VERSION = 1;
struct Serial
{
    uint32_t magic;
    uint32_t version;
    int32_t bidirectional;
    int32_t deltaSoftplus;
    int32_t reverse;
    float outScale;
};
} // namespace

size_t serializedSize()
{
    return sizeof(Serial);
}

void serializeFields(bool bi, ScanFields const& f, void* buffer)
{
    Serial const s{kSERIAL_MAGIC, kSERIAL_VERSION, bi ? 1 : 0, f.deltaSoftplus, f.reverse, f.outScale};
    std::memcpy(buffer, &s, sizeof(s));
}

ScanFields deserializeFields(bool bi, void const* data, size_t length)
{
    VIM_REQUIRE(data != nullptr && length == sizeof(Serial),
        "serialized " << opNameOf(bi) << " has " << length << " bytes, expected " << sizeof(Serial));
    Serial s{};
    std::memcpy(&s, data, sizeof(s));
    VIM_REQUIRE(s.magic == kSERIAL_MAGIC && s.version == kSERIAL_VERSION, "not a serialized " << opNameOf(bi)
                                                                                              << " (v1) plugin");
    VIM_REQUIRE(s.bidirectional == (bi ? 1 : 0), "serialized plugin is of the other scan form");
    VIM_REQUIRE((s.deltaSoftplus == 0 || s.deltaSoftplus == 1) && (s.reverse == 0 || s.reverse == 1)
            && std::isfinite(s.outScale),
        "serialized fields out of range");
    return ScanFields{s.deltaSoftplus, s.reverse, s.outScale};
}

} // namespace plugin
} // namespace vim
