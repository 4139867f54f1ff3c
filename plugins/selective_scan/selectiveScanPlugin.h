/*
 * VimSelectiveScan / VimBiSelectiveScan TensorRT plugins (IPluginV3): thin adapters over the
 * TensorRT-free CUDA core in selectiveScanKernel.h. Names, version, namespace and attributes equal
 * the ONNX nodes written by `vim-deploy export` (vim_deploy/ops/schema.py); TensorRT's ONNX parser
 * maps each node to its plugin through the registry (fallback plugin importer).
 *
 * VimSelectiveScan inputs (linear, contiguous): 0 u (B,D,L) T; 1 delta (B,D,L) T; 2 A (D,N) fp32;
 * 3 B (B,N,L) T; 4 C (B,N,L) T; 5 D (D) fp32; 6 z (B,D,L) T; 7 delta_bias (D) fp32.
 * Fields: delta_softplus (int32 0/1), reverse (int32 0/1).
 * VimBiSelectiveScan inputs: 0-6 forward (u, delta, A, B, C, D, delta_bias), 7-13 backward (same),
 * 14 z; y = (scan(fwd) + reverse_scan(bwd)) * out_scale. Fields: delta_softplus, out_scale (fp32).
 * Output 0: y (B,D,L) T. T: fp32, fp16 or bf16.
 */
#pragma once

#include "NvInferRuntime.h"
#include "selectiveScanPluginCommon.h"

#include <string>
#include <vector>

namespace vim
{
namespace plugin
{

class SelectiveScanPluginV3 : public nvinfer1::IPluginV3,
                              public nvinfer1::IPluginV3OneCore,
                              public nvinfer1::IPluginV3OneBuild,
                              public nvinfer1::IPluginV3OneRuntime
{
public:
    //! bidirectional: the VimBiSelectiveScan form (reverse unused, outScale used).
    SelectiveScanPluginV3(bool bidirectional, ScanFields const& fields, std::string const& nameSpace);
    ~SelectiveScanPluginV3() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    bool mBidirectional;
    ScanFields mFields;
    std::string mNamespace;
    std::vector<nvinfer1::PluginField> mDataToSerialize;
    nvinfer1::PluginFieldCollection mFCToSerialize{};
};

class SelectiveScanPluginV3Creator : public nvinfer1::IPluginCreatorV3One
{
public:
    explicit SelectiveScanPluginV3Creator(bool bidirectional = false);
    ~SelectiveScanPluginV3Creator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

    void setPluginNamespace(char const* ns) noexcept
    {
        mNamespace = ns ? ns : "";
    }

private:
    bool mBidirectional;
    std::string mNamespace;
};

} // namespace plugin
} // namespace vim
