/*
 * VimSelectiveScan TensorRT plugin: IPluginV3 adapter and creator, plus the library entry points
 * getCreators / setLoggerFinder (trtexec --dynamicPlugins, polygraphy --plugins,
 * IPluginRegistry::loadLibrary). The rules live in selectiveScanPluginCommon (shared with the
 * IPluginV2DynamicExt adapter for TensorRT 8.x); every override catches exceptions and reports
 * through the TensorRT logger; nothing aborts the host process.
 */
#include "selectiveScanPlugin.h"

#include <algorithm>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <vector>

using namespace nvinfer1;

namespace vim
{
namespace plugin
{
namespace
{

void caughtError(std::exception const& e)
{
    logError(e.what());
}

std::mutex gFinderMutex;
ILoggerFinder* gLoggerFinder{nullptr};

ILogger* loggerFromFinder()
{
    std::lock_guard<std::mutex> lock(gFinderMutex);
    return gLoggerFinder ? gLoggerFinder->findLogger() : nullptr;
}

} // namespace

// ---------------------------------------------------------------------------------------------
SelectiveScanPluginV3::SelectiveScanPluginV3(bool bidirectional, ScanFields const& fields, std::string const& nameSpace)
    : mBidirectional(bidirectional)
    , mFields(fields)
    , mNamespace(nameSpace)
{
}

IPluginCapability* SelectiveScanPluginV3::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    }
    return nullptr;
}

IPluginV3* SelectiveScanPluginV3::clone() noexcept
{
    try
    {
        return new SelectiveScanPluginV3(mBidirectional, mFields, mNamespace);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return nullptr;
}

char const* SelectiveScanPluginV3::getPluginName() const noexcept
{
    return opNameOf(mBidirectional);
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
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    try
    {
        checkRanks(mBidirectional, in, nbInputs, nbOutputs);
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
        if (nbOutputs != kNB_OUTPUTS)
            throw std::invalid_argument("one output expected");
        outputTypes[0] = outputType(inputTypes, nbInputs, mBidirectional);
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
        if (nbInputs != nbInputsOf(mBidirectional) || nbOutputs != kNB_OUTPUTS || inputs[0].nbDims != 3)
            throw std::invalid_argument("getOutputShapes: u must be (batch, dim, seqlen), one output");
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
        std::vector<PluginTensorDesc> descs(static_cast<size_t>(std::max(nbInputs + nbOutputs, 0)));
        for (size_t i = 0; i < descs.size(); ++i)
            descs[i] = inOut[i].desc;
        return supportsFormat(mBidirectional, pos, descs.data(), nbInputs, nbOutputs);
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
        if (nbInputs != nbInputsOf(mBidirectional))
            throw std::invalid_argument("wrong number of inputs");
        Dims const& lo = inputs[0].min;
        Dims const& hi = inputs[0].max;
        return workspaceBytes(mBidirectional, lo.d[0], hi.d[0], hi.d[1], hi.d[2], inputs[2].max.d[1]);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return 0;
}

int32_t SelectiveScanPluginV3::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    try
    {
        if (nbOutputs != kNB_OUTPUTS)
            throw std::invalid_argument("one output expected");
        checkShapes(mBidirectional, in, nbInputs);
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
        enqueueScan(mBidirectional, mFields, inputDesc, inputs, outputs, workspace, stream);
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
        mDataToSerialize.emplace_back("delta_softplus", &mFields.deltaSoftplus, PluginFieldType::kINT32, 1);
        if (mBidirectional)
            mDataToSerialize.emplace_back("out_scale", &mFields.outScale, PluginFieldType::kFLOAT32, 1);
        else
            mDataToSerialize.emplace_back("reverse", &mFields.reverse, PluginFieldType::kINT32, 1);
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
}

char const* SelectiveScanPluginV3Creator::getPluginName() const noexcept
{
    return opNameOf(mBidirectional);
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
    return fieldNames(mBidirectional);
}

IPluginV3* SelectiveScanPluginV3Creator::createPlugin(
    char const* /*name*/, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    try
    {
        // the same strict rules at build (fields from the ONNX node) and at runtime (serialized fields)
        return new SelectiveScanPluginV3(mBidirectional, parseFields(mBidirectional, fc), mNamespace);
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
    if (finder == nullptr)
        return; // keep a working logger (TensorRT may reset the finder while the library stays loaded)
    {
        std::lock_guard<std::mutex> lock(vim::plugin::gFinderMutex);
        vim::plugin::gLoggerFinder = finder;
    }
    vim::plugin::setLoggerSource(vim::plugin::loggerFromFinder);
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
