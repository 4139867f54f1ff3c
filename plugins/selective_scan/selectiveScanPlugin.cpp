/*
 * VimSelectiveScan TensorRT plugin: IPluginV3 adapter and creator, plus the library entry points
 * getCreators / setLoggerFinder (trtexec --dynamicPlugins, polygraphy --plugins,
 * IPluginRegistry::loadLibrary). Every override catches exceptions and reports through the
 * TensorRT logger; nothing aborts the host process.
 */
#include "selectiveScanPlugin.h"

#include "selectiveScanKernel.h"

#include <algorithm>
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

bool isFp32Input(int32_t pos)
{
    return pos == 2 || pos == 5 || pos == 7; // A, D, delta_bias
}

constexpr int32_t kRANKS[kNB_INPUTS] = {3, 3, 2, 3, 3, 1, 3, 1};

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

} // namespace

// ---------------------------------------------------------------------------------------------
SelectiveScanPluginV3::SelectiveScanPluginV3(int32_t deltaSoftplus, int32_t reverse, std::string const& nameSpace)
    : mDeltaSoftplus(deltaSoftplus)
    , mReverse(reverse)
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
        return new SelectiveScanPluginV3(mDeltaSoftplus, mReverse, mNamespace);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return nullptr;
}

char const* SelectiveScanPluginV3::getPluginName() const noexcept
{
    return kSELECTIVE_SCAN_PLUGIN_NAME;
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
        VIM_VALIDATE(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS,
            "expects 8 inputs (u, delta, A, B, C, D, z, delta_bias) and 1 output, got " << nbInputs << " and "
                                                                                      << nbOutputs);
        for (int32_t i = 0; i < kNB_INPUTS; ++i)
        {
            VIM_VALIDATE(in[i].desc.dims.nbDims == kRANKS[i],
                "input " << i << " has rank " << in[i].desc.dims.nbDims << ", expected " << kRANKS[i]);
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
        VIM_VALIDATE(nbOutputs == kNB_OUTPUTS && nbInputs == kNB_INPUTS, "wrong number of inputs/outputs");
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
        VIM_VALIDATE(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS, "wrong number of inputs/outputs");
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
        VIM_VALIDATE(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS && pos >= 0 && pos < nbInputs + nbOutputs,
            "bad position " << pos);
        PluginTensorDesc const& d = inOut[pos].desc;
        if (d.format != TensorFormat::kLINEAR)
            return false;
        if (pos < kNB_INPUTS && isFp32Input(pos))
            return d.type == DataType::kFLOAT;
        if (pos == 0)
            return isActivationType(d.type);
        return d.type == inOut[0].desc.type; // delta, B, C, z and the output follow u
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
        VIM_VALIDATE(nbInputs == kNB_INPUTS, "wrong number of inputs");
        // Sequence chunking (and so the workspace) depends on batch: take the largest need over the profile.
        SelectiveScanParams p{};
        p.dim = static_cast<int32_t>(inputs[0].max.d[1]);
        p.seqlen = static_cast<int32_t>(inputs[0].max.d[2]);
        p.dstate = static_cast<int32_t>(inputs[2].max.d[1]);
        p.numDirections = 1;
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
        VIM_VALIDATE(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS, "wrong number of inputs/outputs");
        Dims const& u = in[0].dims;
        VIM_VALIDATE(u.nbDims == 3, "u must be (batch, dim, seqlen)");
        for (int32_t i : {1, 6})
        {
            VIM_VALIDATE(in[i].dims.nbDims == 3 && in[i].dims.d[0] == u.d[0] && in[i].dims.d[1] == u.d[1]
                    && in[i].dims.d[2] == u.d[2],
                "input " << i << " must have u's shape");
        }
        Dims const& A = in[2].dims;
        VIM_VALIDATE(A.nbDims == 2 && A.d[0] == u.d[1] && A.d[1] >= 1 && A.d[1] <= 256,
            "A must be (dim, dstate) with dstate in 1..256");
        for (int32_t i : {3, 4})
        {
            VIM_VALIDATE(in[i].dims.nbDims == 3 && in[i].dims.d[0] == u.d[0] && in[i].dims.d[1] == A.d[1]
                    && in[i].dims.d[2] == u.d[2],
                "input " << i << " must be (batch, dstate, seqlen)");
        }
        for (int32_t i : {5, 7})
        {
            VIM_VALIDATE(in[i].dims.nbDims == 1 && in[i].dims.d[0] == u.d[1], "input " << i << " must be (dim)");
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
        p.numDirections = 1;
        p.dir[0].u = inputs[0];
        p.dir[0].delta = inputs[1];
        p.dir[0].A = static_cast<float const*>(inputs[2]);
        p.dir[0].B = inputs[3];
        p.dir[0].C = inputs[4];
        p.dir[0].D = static_cast<float const*>(inputs[5]);
        p.dir[0].z = inputs[6];
        p.dir[0].deltaBias = static_cast<float const*>(inputs[7]);
        p.dir[0].reverse = mReverse != 0;
        p.out = outputs[0];
        // getWorkspaceSize reserved, for every batch of the profile, the need at kWORKSPACE_SM_COUNT SMs;
        // the device's own chunk choice needs no more unless it has more SMs, then fall back to 1 chunk.
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
SelectiveScanPluginV3Creator::SelectiveScanPluginV3Creator()
{
    mPluginAttributes.emplace_back("delta_softplus", nullptr, PluginFieldType::kINT32, 1);
    mPluginAttributes.emplace_back("reverse", nullptr, PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mPluginAttributes.size());
    mFC.fields = mPluginAttributes.data();
}

char const* SelectiveScanPluginV3Creator::getPluginName() const noexcept
{
    return kSELECTIVE_SCAN_PLUGIN_NAME;
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
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
        {
            PluginField const& f = fc->fields[i];
            if (f.name == nullptr)
                continue;
            if (std::strcmp(f.name, "delta_softplus") == 0)
                deltaSoftplus = readIntField(f);
            else if (std::strcmp(f.name, "reverse") == 0)
                reverse = readIntField(f);
            // plugin_version / plugin_namespace and unknown string fields are ignored
        }
        VIM_VALIDATE(deltaSoftplus == 0 || deltaSoftplus == 1, "delta_softplus must be 0 or 1, got " << deltaSoftplus);
        VIM_VALIDATE(reverse == 0 || reverse == 1, "reverse must be 0 or 1, got " << reverse);
        return new SelectiveScanPluginV3(deltaSoftplus, reverse, mNamespace);
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
    static vim::plugin::SelectiveScanPluginV3Creator selectiveScanCreator;
    static nvinfer1::IPluginCreatorInterface* const kCreators[] = {&selectiveScanCreator};
    nbCreators = 1;
    return kCreators;
}
