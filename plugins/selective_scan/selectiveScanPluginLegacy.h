/*
 * VimSelectiveScan / VimBiSelectiveScan for TensorRT 8.5 / 8.6 (JetPack 5.1 / 6.0): IPluginV2DynamicExt
 * + IPluginCreator adapters over the same rules and CUDA core as the IPluginV3 adapter
 * (selectiveScanPluginCommon.h). Same names, version "1", namespace and fields; the plan carries
 * the fields as a small tagged blob (serializeFields).
 *
 * Loading: the library registers both creators with libnvinfer's plugin registry when it is loaded
 * (`trtexec --plugins=libvim_trt_plugin.so`, `polygraphy ... --plugins`, ctypes.CDLL / dlopen before
 * parsing). It also exports vimGetPluginCreatorsV2 for hosts that register creators themselves.
 * fp32 and fp16 (TensorRT 8.x has no bf16).
 */
#pragma once

#include "NvInferRuntime.h"
#include "selectiveScanPluginCommon.h"

#include <string>

// IPluginV2 (the base of IPluginV2DynamicExt, and what IPluginCreator returns) is marked deprecated
// in the TensorRT 8.x headers themselves; an IPluginV2 adapter cannot avoid naming it. The warning
// is silenced for these declarations only, so -Werror still covers everything else.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace vim
{
namespace plugin
{

class SelectiveScanPluginV2 : public nvinfer1::IPluginV2DynamicExt
{
public:
    SelectiveScanPluginV2(bool bidirectional, ScanFields const& fields, std::string const& nameSpace);

    // IPluginV2DynamicExt
    nvinfer1::IPluginV2DynamicExt* clone() const noexcept override;
    nvinfer1::DimsExprs getOutputDimensions(int32_t outputIndex, nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(
        int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override;
    void configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

    // IPluginV2Ext
    nvinfer1::DataType getOutputDataType(
        int32_t index, nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;

    // IPluginV2
    char const* getPluginType() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    int32_t getNbOutputs() const noexcept override;
    int32_t initialize() noexcept override;
    void terminate() noexcept override;
    size_t getSerializationSize() const noexcept override;
    void serialize(void* buffer) const noexcept override;
    void destroy() noexcept override;
    void setPluginNamespace(char const* pluginNamespace) noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    bool mBidirectional;
    ScanFields mFields;
    std::string mNamespace;
};

class SelectiveScanPluginV2Creator : public nvinfer1::IPluginCreator
{
public:
    explicit SelectiveScanPluginV2Creator(bool bidirectional = false);

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV2* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc) noexcept override;
    nvinfer1::IPluginV2* deserializePlugin(char const* name, void const* serialData, size_t serialLength) noexcept override;
    void setPluginNamespace(char const* pluginNamespace) noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    bool mBidirectional;
    std::string mNamespace;
};

} // namespace plugin
} // namespace vim

#pragma GCC diagnostic pop
