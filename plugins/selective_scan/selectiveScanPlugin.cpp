/*
 * VimSelectiveScan TensorRT plugin: IPluginV3 adapter and creator, plus the library entry points
 * getCreators / setLoggerFinder (trtexec --dynamicPlugins, polygraphy --plugins,
 * IPluginRegistry::loadLibrary). Every override catches exceptions and reports through the
 * TensorRT logger; nothing aborts the host process.
 */
#include "selectiveScanPlugin.h"

#include "selectiveScanKernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <stdexcept>

using namespace nvinfer1;

namespace vim
{
namespace plugin
{
namespace
{

std::mutex gLoggerMutex;
ILoggerFinder* gLoggerFinder{nullptr};

void logMessage(ILogger::Severity severity, std::string const& msg)
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    ILogger* logger = gLoggerFinder ? gLoggerFinder->findLogger() : nullptr;
    std::string const text = std::string("[VimSelectiveScan] ") + msg;
    if (logger)
    {
        logger->log(severity, text.c_str());
    }
}

void caughtError(std::exception const& e)
{
    logMessage(ILogger::Severity::kERROR, e.what());
}

//! Our validate macro (TensorRT OSS's PLUGIN_VALIDATE lives in its plugin sources, not in headers).
#define VIM_VALIDATE(cond, msg)                                                                                        \
    do                                                                                                                 \
    {                                                                                                                  \
        if (!(cond))                                                                                                   \
        {                                                                                                              \
            std::ostringstream os_;                                                                                    \
            os_ << msg;                                                                                                \
            throw std::invalid_argument(os_.str());                                                                    \
        }                                                                                                              \
    } while (0)

bool isActivationType(DataType t)
{
    return t == DataType::kFLOAT || t == DataType::kHALF || t == DataType::kBF16;
}

//! Input positions of one direction's tensors (and z) in the two node forms.
struct DirIndex
{
    int32_t u, delta, A, B, C, D, bias, z;
};
constexpr DirIndex kSINGLE{0, 1, 2, 3, 4, 5, 7, 6};
constexpr DirIndex kBI_FWD{0, 1, 2, 3, 4, 5, 6, 14};
constexpr DirIndex kBI_BWD{7, 8, 9, 10, 11, 12, 13, 14};

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

//! Largest SM count the workspace is sized for (the chunk count grows with it).
constexpr int32_t kWORKSPACE_SM_COUNT = 264;

ScanDType toScanType(DataType t)
{
    switch (t)
    {
    case DataType::kHALF: return ScanDType::kHALF;
    case DataType::kBF16: return ScanDType::kBF16;
    default: return ScanDType::kFLOAT;
    }
}

int32_t readIntField(PluginField const& f)
{
    VIM_VALIDATE(f.length == 1 && f.data != nullptr, "field '" << f.name << "' must hold one value");
    if (f.type == PluginFieldType::kINT32)
        return *static_cast<int32_t const*>(f.data);
    if (f.type == PluginFieldType::kINT64)
        return static_cast<int32_t>(*static_cast<int64_t const*>(f.data));
    if (f.type == PluginFieldType::kINT8)
        return *static_cast<int8_t const*>(f.data);
    throw std::invalid_argument(std::string("field '") + f.name + "' must be an integer (kINT32)");
}

float readFloatField(PluginField const& f)
{
    VIM_VALIDATE(f.length == 1 && f.data != nullptr, "field '" << f.name << "' must hold one value");
    if (f.type == PluginFieldType::kFLOAT32)
        return *static_cast<float const*>(f.data);
    if (f.type == PluginFieldType::kFLOAT64)
        return static_cast<float>(*static_cast<double const*>(f.data));
    throw std::invalid_argument(std::string("field '") + f.name + "' must be a float (kFLOAT32)");
}

} // namespace

// ---------------------------------------------------------------------------------------------
SelectiveScanPluginV3::SelectiveScanPluginV3(
    bool bidirectional, int32_t deltaSoftplus, int32_t reverse, float outScale, std::string const& nameSpace)
    : mBidirectional(bidirectional)
    , mDeltaSoftplus(deltaSoftplus)
    , mReverse(reverse)
    , mOutScale(outScale)
    , mNamespace(nameSpace)
{
}

IPluginCapability* SelectiveScanPluginV3::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    try
    {
        switch (type)
        {
        case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
        case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
        }
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return nullptr;
}

IPluginV3* SelectiveScanPluginV3::clone() noexcept
{
    try
    {
        return new SelectiveScanPluginV3(mBidirectional, mDeltaSoftplus, mReverse, mOutScale, mNamespace);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return nullptr;
}

char const* SelectiveScanPluginV3::getPluginName() const noexcept
{
    return mBidirectional ? kBI_SELECTIVE_SCAN_PLUGIN_NAME : kSELECTIVE_SCAN_PLUGIN_NAME;
}

char const* SelectiveScanPluginV3::getPluginVersion() const noexcept
{
    return kSELECTIVE_SCAN_PLUGIN_VERSION;
}

char const* SelectiveScanPluginV3::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

int32_t SelectiveScanPluginV3::getNbOutputs() const noexcept
{
    return kNB_OUTPUTS;
}

int32_t SelectiveScanPluginV3::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        VIM_VALIDATE(nbInputs == this->nbInputs() && nbOutputs == kNB_OUTPUTS,
            "expects " << this->nbInputs() << " inputs and 1 output, got " << nbInputs << " and " << nbOutputs);
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            VIM_VALIDATE(in[i].desc.dims.nbDims == expectedRank(mBidirectional, i),
                "input " << i << " has rank " << in[i].desc.dims.nbDims << ", expected "
                         << expectedRank(mBidirectional, i));
        }
        (void) out;
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

int32_t SelectiveScanPluginV3::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        VIM_VALIDATE(nbOutputs == kNB_OUTPUTS && nbInputs == this->nbInputs(), "wrong number of inputs/outputs");
        VIM_VALIDATE(isActivationType(inputTypes[0]), "u must be fp32, fp16 or bf16");
        outputTypes[0] = inputTypes[0];
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

int32_t SelectiveScanPluginV3::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& /*exprBuilder*/) noexcept
{
    try
    {
        VIM_VALIDATE(nbInputs == this->nbInputs() && nbOutputs == kNB_OUTPUTS, "wrong number of inputs/outputs");
        VIM_VALIDATE(inputs[0].nbDims == 3, "u must be (batch, dim, seqlen)");
        outputs[0] = inputs[0];
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

bool SelectiveScanPluginV3::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    try
    {
        VIM_VALIDATE(nbInputs == this->nbInputs() && nbOutputs == kNB_OUTPUTS && pos >= 0 && pos < nbInputs + nbOutputs,
            "bad position " << pos);
        PluginTensorDesc const& d = inOut[pos].desc;
        if (d.format != TensorFormat::kLINEAR)
            return false;
        if (pos < nbInputs && isFp32Input(mBidirectional, pos))
            return d.type == DataType::kFLOAT;
        if (pos == 0)
            return isActivationType(d.type);
        return d.type == inOut[0].desc.type; // the other activations and the output follow u
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return false;
}

size_t SelectiveScanPluginV3::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    try
    {
        VIM_VALIDATE(nbInputs == this->nbInputs(), "wrong number of inputs");
        // Sequence chunking (and so the workspace) depends on batch: take the largest need over the profile.
        SelectiveScanParams p{};
        p.dim = static_cast<int32_t>(inputs[0].max.d[1]);
        p.seqlen = static_cast<int32_t>(inputs[0].max.d[2]);
        p.dstate = static_cast<int32_t>(inputs[2].max.d[1]);
        p.numDirections = mBidirectional ? 2 : 1;
        p.smCount = kWORKSPACE_SM_COUNT;
        int64_t const bMin = std::max<int64_t>(1, inputs[0].min.d[0]);
        int64_t const bMax = std::max<int64_t>(bMin, inputs[0].max.d[0]);
        size_t need = 0;
        for (int64_t b = bMin; b <= bMax; ++b)
        {
            p.batch = static_cast<int32_t>(b);
            need = std::max(need, selectiveScanWorkspaceSize(p));
        }
        return need;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return 0;
}

int32_t SelectiveScanPluginV3::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        VIM_VALIDATE(nbInputs == this->nbInputs() && nbOutputs == kNB_OUTPUTS, "wrong number of inputs/outputs");
        Dims const& u = in[0].dims;
        VIM_VALIDATE(u.nbDims == 3, "u must be (batch, dim, seqlen)");
        auto sameAsU = [&](int32_t i) {
            return in[i].dims.nbDims == 3 && in[i].dims.d[0] == u.d[0] && in[i].dims.d[1] == u.d[1]
                && in[i].dims.d[2] == u.d[2];
        };
        int32_t const nbDirs = mBidirectional ? 2 : 1;
        for (int32_t k = 0; k < nbDirs; ++k)
        {
            DirIndex const& ix = mBidirectional ? (k == 0 ? kBI_FWD : kBI_BWD) : kSINGLE;
            for (int32_t i : {ix.u, ix.delta, ix.z})
            {
                VIM_VALIDATE(sameAsU(i), "input " << i << " must have u's shape (batch, dim, seqlen)");
            }
            Dims const& A = in[ix.A].dims;
            VIM_VALIDATE(A.nbDims == 2 && A.d[0] == u.d[1] && A.d[1] >= 1 && A.d[1] <= 256
                    && A.d[1] == in[kSINGLE.A].dims.d[1],
                "input " << ix.A << " (A) must be (dim, dstate) with dstate in 1..256");
            for (int32_t i : {ix.B, ix.C})
            {
                VIM_VALIDATE(in[i].dims.nbDims == 3 && in[i].dims.d[0] == u.d[0] && in[i].dims.d[1] == A.d[1]
                        && in[i].dims.d[2] == u.d[2],
                    "input " << i << " must be (batch, dstate, seqlen)");
            }
            for (int32_t i : {ix.D, ix.bias})
            {
                VIM_VALIDATE(in[i].dims.nbDims == 1 && in[i].dims.d[0] == u.d[1], "input " << i << " must be (dim)");
            }
        }
        (void) out;
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

int32_t SelectiveScanPluginV3::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    try
    {
        Dims const& u = inputDesc[0].dims;
        SelectiveScanParams p{};
        p.batch = static_cast<int32_t>(u.d[0]);
        p.dim = static_cast<int32_t>(u.d[1]);
        p.seqlen = static_cast<int32_t>(u.d[2]);
        p.dstate = static_cast<int32_t>(inputDesc[2].dims.d[1]);
        p.dtype = toScanType(inputDesc[0].type);
        p.deltaSoftplus = mDeltaSoftplus != 0;
        p.numDirections = mBidirectional ? 2 : 1;
        p.outScale = mBidirectional ? mOutScale : 1.0f;
        for (int32_t k = 0; k < p.numDirections; ++k)
        {
            DirIndex const& ix = mBidirectional ? (k == 0 ? kBI_FWD : kBI_BWD) : kSINGLE;
            ScanDirection& d = p.dir[k];
            d.u = inputs[ix.u];
            d.delta = inputs[ix.delta];
            d.A = static_cast<float const*>(inputs[ix.A]);
            d.B = inputs[ix.B];
            d.C = inputs[ix.C];
            d.D = static_cast<float const*>(inputs[ix.D]);
            d.z = inputs[ix.z];
            d.deltaBias = static_cast<float const*>(inputs[ix.bias]);
            d.reverse = mBidirectional ? (k == 1) : (mReverse != 0);
        }
        p.out = outputs[0];
        // getWorkspaceSize reserved, for every batch of the profile, the need at kWORKSPACE_SM_COUNT SMs
        // holding the launch bounds' minimum of blocks each; the device's own chunk choice (its SMs x its
        // occupancy) needs no more unless it holds more threads than that, then fall back to 1 chunk.
        SelectiveScanParams sized = p;
        sized.smCount = kWORKSPACE_SM_COUNT;
        size_t const granted = workspace ? selectiveScanWorkspaceSize(sized) : 0;
        if (selectiveScanWorkspaceSize(p) > granted)
        {
            p.numChunks = 1;
        }
        if (char const* msg = selectiveScanValidate(p))
        {
            throw std::invalid_argument(msg);
        }
        cudaError_t const err = selectiveScanForward(p, workspace, granted, stream);
        VIM_VALIDATE(err == cudaSuccess, "kernel launch failed: " << cudaGetErrorString(err));
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

IPluginV3* SelectiveScanPluginV3::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone();
}

PluginFieldCollection const* SelectiveScanPluginV3::getFieldsToSerialize() noexcept
{
    try
    {
        mDataToSerialize.clear();
        mDataToSerialize.emplace_back("delta_softplus", &mDeltaSoftplus, PluginFieldType::kINT32, 1);
        if (mBidirectional)
            mDataToSerialize.emplace_back("out_scale", &mOutScale, PluginFieldType::kFLOAT32, 1);
        else
            mDataToSerialize.emplace_back("reverse", &mReverse, PluginFieldType::kINT32, 1);
        mFCToSerialize.nbFields = static_cast<int32_t>(mDataToSerialize.size());
        mFCToSerialize.fields = mDataToSerialize.data();
        return &mFCToSerialize;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return nullptr;
}

// ---------------------------------------------------------------------------------------------
SelectiveScanPluginV3Creator::SelectiveScanPluginV3Creator(bool bidirectional)
    : mBidirectional(bidirectional)
{
    mPluginAttributes.emplace_back("delta_softplus", nullptr, PluginFieldType::kINT32, 1);
    if (bidirectional)
        mPluginAttributes.emplace_back("out_scale", nullptr, PluginFieldType::kFLOAT32, 1);
    else
        mPluginAttributes.emplace_back("reverse", nullptr, PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mPluginAttributes.size());
    mFC.fields = mPluginAttributes.data();
}

char const* SelectiveScanPluginV3Creator::getPluginName() const noexcept
{
    return mBidirectional ? kBI_SELECTIVE_SCAN_PLUGIN_NAME : kSELECTIVE_SCAN_PLUGIN_NAME;
}

char const* SelectiveScanPluginV3Creator::getPluginVersion() const noexcept
{
    return kSELECTIVE_SCAN_PLUGIN_VERSION;
}

char const* SelectiveScanPluginV3Creator::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

PluginFieldCollection const* SelectiveScanPluginV3Creator::getFieldNames() noexcept
{
    return &mFC;
}

IPluginV3* SelectiveScanPluginV3Creator::createPlugin(
    char const* /*name*/, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    try
    {
        int32_t deltaSoftplus = 1;
        int32_t reverse = 0;
        float outScale = 1.0f;
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
        {
            PluginField const& f = fc->fields[i];
            if (f.name == nullptr)
                continue;
            if (std::strcmp(f.name, "delta_softplus") == 0)
                deltaSoftplus = readIntField(f);
            else if (std::strcmp(f.name, "reverse") == 0)
                reverse = readIntField(f);
            else if (std::strcmp(f.name, "out_scale") == 0)
                outScale = readFloatField(f);
            // plugin_version / plugin_namespace and unknown string fields are ignored
        }
        VIM_VALIDATE(deltaSoftplus == 0 || deltaSoftplus == 1, "delta_softplus must be 0 or 1, got " << deltaSoftplus);
        VIM_VALIDATE(reverse == 0 || reverse == 1, "reverse must be 0 or 1, got " << reverse);
        VIM_VALIDATE(std::isfinite(outScale), "out_scale must be finite");
        return new SelectiveScanPluginV3(mBidirectional, deltaSoftplus, reverse, outScale, mNamespace);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return nullptr;
}

} // namespace plugin
} // namespace vim

// ---------------------------------------------------------------------------------------------
// Library entry points (TensorRT >= 10: IPluginRegistry::loadLibrary, trtexec --dynamicPlugins).
extern "C" __attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    std::lock_guard<std::mutex> lock(vim::plugin::gLoggerMutex);
    vim::plugin::gLoggerFinder = finder;
}

extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(
    int32_t& nbCreators)
{
    static vim::plugin::SelectiveScanPluginV3Creator selectiveScanCreator(false);
    static vim::plugin::SelectiveScanPluginV3Creator biSelectiveScanCreator(true);
    static nvinfer1::IPluginCreatorInterface* const kCreators[] = {&selectiveScanCreator, &biSelectiveScanCreator};
    nbCreators = 2;
    return kCreators;
}
