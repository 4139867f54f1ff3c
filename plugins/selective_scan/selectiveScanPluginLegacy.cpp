/*
 * IPluginV2DynamicExt adapter of the scan plugin for TensorRT 8.x (see selectiveScanPluginLegacy.h).
 * Every override catches exceptions and reports through TensorRT's logger (libnvinfer's
 * getLogger()); nothing aborts the host process.
 */
#include "selectiveScanPluginLegacy.h"

#include <exception>
#include <stdexcept>

using namespace nvinfer1;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" // IPluginV2: see selectiveScanPluginLegacy.h

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

} // namespace

SelectiveScanPluginV2::SelectiveScanPluginV2(bool bidirectional, ScanFields const& fields, std::string const& nameSpace)
    : mBidirectional(bidirectional)
    , mFields(fields)
    , mNamespace(nameSpace)
{
}

IPluginV2DynamicExt* SelectiveScanPluginV2::clone() const noexcept
{
    try
    {
        return new SelectiveScanPluginV2(mBidirectional, mFields, mNamespace);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return nullptr;
}

DimsExprs SelectiveScanPluginV2::getOutputDimensions(
    int32_t outputIndex, DimsExprs const* inputs, int32_t nbInputs, IExprBuilder& /*exprBuilder*/) noexcept
{
    try
    {
        if (outputIndex != 0 || nbInputs != nbInputsOf(mBidirectional) || inputs[0].nbDims != 3)
            throw std::invalid_argument("getOutputDimensions: u must be (batch, dim, seqlen), one output");
        return inputs[0];
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return DimsExprs{};
}

bool SelectiveScanPluginV2::supportsFormatCombination(
    int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    try
    {
        return plugin::supportsFormat(mBidirectional, pos, inOut, nbInputs, nbOutputs);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return false;
}

void SelectiveScanPluginV2::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    try
    {
        checkRanks(mBidirectional, in, nbInputs, nbOutputs);
    }
    catch (std::exception const& e)
    {
        caughtError(e); // IPluginV2 has no error return here; TensorRT fails on the logged error
    }
}

size_t SelectiveScanPluginV2::getWorkspaceSize(
    PluginTensorDesc const* inputs, int32_t nbInputs, PluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    try
    {
        // "enough for these sizes or any smaller problem": every batch up to this one
        if (nbInputs != nbInputsOf(mBidirectional))
            throw std::invalid_argument("wrong number of inputs");
        Dims const& u = inputs[0].dims;
        return workspaceBytes(mBidirectional, 1, u.d[0], u.d[1], u.d[2], inputs[2].dims.d[1]);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return 0;
}

int32_t SelectiveScanPluginV2::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
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

DataType SelectiveScanPluginV2::getOutputDataType(int32_t index, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        if (index != 0)
            throw std::invalid_argument("one output");
        return outputType(inputTypes, nbInputs, mBidirectional);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return DataType::kFLOAT;
}

char const* SelectiveScanPluginV2::getPluginType() const noexcept
{
    return opNameOf(mBidirectional);
}

char const* SelectiveScanPluginV2::getPluginVersion() const noexcept
{
    return kSELECTIVE_SCAN_PLUGIN_VERSION;
}

int32_t SelectiveScanPluginV2::getNbOutputs() const noexcept
{
    return kNB_OUTPUTS;
}

int32_t SelectiveScanPluginV2::initialize() noexcept
{
    return 0;
}

void SelectiveScanPluginV2::terminate() noexcept {}

size_t SelectiveScanPluginV2::getSerializationSize() const noexcept
{
    return serializedSize();
}

void SelectiveScanPluginV2::serialize(void* buffer) const noexcept
{
    if (buffer != nullptr)
        serializeFields(mBidirectional, mFields, buffer);
}

void SelectiveScanPluginV2::destroy() noexcept
{
    delete this;
}

void SelectiveScanPluginV2::setPluginNamespace(char const* pluginNamespace) noexcept
{
    try
    {
        mNamespace = pluginNamespace ? pluginNamespace : "";
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
}

char const* SelectiveScanPluginV2::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

// ---------------------------------------------------------------------------------------------
SelectiveScanPluginV2Creator::SelectiveScanPluginV2Creator(bool bidirectional)
    : mBidirectional(bidirectional)
{
}

char const* SelectiveScanPluginV2Creator::getPluginName() const noexcept
{
    return opNameOf(mBidirectional);
}

char const* SelectiveScanPluginV2Creator::getPluginVersion() const noexcept
{
    return kSELECTIVE_SCAN_PLUGIN_VERSION;
}

PluginFieldCollection const* SelectiveScanPluginV2Creator::getFieldNames() noexcept
{
    return fieldNames(mBidirectional);
}

IPluginV2* SelectiveScanPluginV2Creator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc) noexcept
{
    try
    {
        return new SelectiveScanPluginV2(mBidirectional, parseFields(mBidirectional, fc), mNamespace);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return nullptr;
}

IPluginV2* SelectiveScanPluginV2Creator::deserializePlugin(
    char const* /*name*/, void const* serialData, size_t serialLength) noexcept
{
    try
    {
        return new SelectiveScanPluginV2(mBidirectional, deserializeFields(mBidirectional, serialData, serialLength),
            mNamespace);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return nullptr;
}

void SelectiveScanPluginV2Creator::setPluginNamespace(char const* pluginNamespace) noexcept
{
    try
    {
        mNamespace = pluginNamespace ? pluginNamespace : "";
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
}

char const* SelectiveScanPluginV2Creator::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

namespace
{

SelectiveScanPluginV2Creator& creator(bool bidirectional)
{
    static SelectiveScanPluginV2Creator single(false);
    static SelectiveScanPluginV2Creator bi(true);
    return bidirectional ? bi : single;
}

ILogger* nvinferLogger()
{
    return getLogger(); // libnvinfer's logger (the one the application gave its builder / runtime)
}

//! Register both creators with libnvinfer's registry when the library is loaded (what
//! REGISTER_TENSORRT_PLUGIN does in TensorRT's own plugins). Without a real libnvinfer in the
//! process (the host test driver's stub) getPluginRegistry() returns null and nothing is registered.
struct LoadTimeRegistration
{
    LoadTimeRegistration()
    {
        setLoggerSource(nvinferLogger);
        if (IPluginRegistry* registry = getPluginRegistry())
        {
            for (bool bi : {false, true})
            {
                if (!registry->registerCreator(creator(bi), ""))
                    logError(std::string("could not register ") + opNameOf(bi) + " (already registered?)");
            }
        }
    }
};
LoadTimeRegistration const gRegistration{};

} // namespace

} // namespace plugin
} // namespace vim

//! The two creators, for hosts that register them themselves (and the plugin host test driver).
extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginCreator* const* vimGetPluginCreatorsV2(
    int32_t* nbCreators)
{
    static nvinfer1::IPluginCreator* const kCreators[]
        = {&vim::plugin::creator(false), &vim::plugin::creator(true)};
    if (nbCreators != nullptr)
        *nbCreators = 2;
    return kCreators;
}

#pragma GCC diagnostic pop
