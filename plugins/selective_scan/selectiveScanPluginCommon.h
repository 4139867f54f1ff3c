/*
 * What the two TensorRT adapters of the scan share: the op contract (names, fields, inputs), strict
 * field parsing, shape and format rules, workspace sizing and the enqueue itself. Only TensorRT types
 * present in every supported release (8.5 .. 11) are used here, so the IPluginV2DynamicExt adapter
 * (TensorRT 8.x, selectiveScanPluginLegacy.cpp) and the IPluginV3 adapter (TensorRT >= 10,
 * selectiveScanPlugin.cpp) are thin translations of TensorRT's calls into these functions.
 *
 * Errors are thrown as std::invalid_argument; the adapters catch them in every noexcept override
 * and report through logError().
 */
#pragma once

#include "NvInferRuntime.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace vim
{
namespace plugin
{

constexpr char const* kSELECTIVE_SCAN_PLUGIN_NAME{"VimSelectiveScan"};
constexpr char const* kBI_SELECTIVE_SCAN_PLUGIN_NAME{"VimBiSelectiveScan"};
constexpr char const* kSELECTIVE_SCAN_PLUGIN_VERSION{"1"};
constexpr int32_t kNB_INPUTS{8};
constexpr int32_t kNB_BI_INPUTS{15};
constexpr int32_t kNB_OUTPUTS{1};

//! The node attributes, validated.
struct ScanFields
{
    int32_t deltaSoftplus{1};
    int32_t reverse{0};     //!< VimSelectiveScan only
    float outScale{1.0f};   //!< VimBiSelectiveScan only
};

inline int32_t nbInputsOf(bool bidirectional)
{
    return bidirectional ? kNB_BI_INPUTS : kNB_INPUTS;
}

inline char const* opNameOf(bool bidirectional)
{
    return bidirectional ? kBI_SELECTIVE_SCAN_PLUGIN_NAME : kSELECTIVE_SCAN_PLUGIN_NAME;
}

//! Where log messages go: the adapter sets the source of the current logger (TensorRT >= 8.6: the
//! ILoggerFinder handed to the library; 8.5: libnvinfer's getLogger()). A null source keeps the
//! previous one, so a later setLoggerFinder(nullptr) does not silence a working logger.
using LoggerSource = nvinfer1::ILogger* (*) ();
void setLoggerSource(LoggerSource source);
void logMessage(nvinfer1::ILogger::Severity severity, std::string const& msg);
void logError(std::string const& msg);

//! Parse a creator's fields: delta_softplus (INT 0/1) and reverse (INT 0/1) or out_scale (finite
//! FLOAT) are required; plugin_version / plugin_namespace (strings) are accepted and ignored; any
//! other field, a wrong type, a length other than 1 or an out-of-range value throws.
ScanFields parseFields(bool bidirectional, nvinfer1::PluginFieldCollection const* fc);

//! The field list a creator advertises (getFieldNames).
nvinfer1::PluginFieldCollection const* fieldNames(bool bidirectional);

//! Ranks of the inputs (configure time; both adapters get DynamicPluginTensorDesc there).
void checkRanks(bool bidirectional, nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs, int32_t nbOutputs);

//! Full shape agreement between the inputs (run time; concrete dims). Dimensions beyond int32 throw.
void checkShapes(bool bidirectional, nvinfer1::PluginTensorDesc const* in, int32_t nbInputs);

//! supportsFormatCombination: linear only; A, D, delta_bias fp32; the rest follow u (fp32/fp16/bf16).
bool supportsFormat(
    bool bidirectional, int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs);

//! Output type from the input types.
nvinfer1::DataType outputType(nvinfer1::DataType const* inputTypes, int32_t nbInputs, bool bidirectional);

//! The SM count a plan's workspace is sized for at least (the chunk count grows with it): larger
//! than any GPU's today, so a plan built on a small GPU still covers a large one.
constexpr int32_t kWORKSPACE_SM_COUNT{264};

//! Workspace bytes for every batch in [minBatch, maxBatch] at this dim / seqlen / dstate, for
//! `smCount` SMs (0: max(kWORKSPACE_SM_COUNT, the current device's)). Dimensions outside int32 throw.
size_t workspaceBytes(bool bidirectional, int64_t minBatch, int64_t maxBatch, int64_t dim, int64_t seqlen,
    int64_t dstate, int32_t smCount = 0);

//! Launch on `stream`. Empty tensors (batch, dim or seqlen 0) return without a launch. The
//! workspace is taken to hold what getWorkspaceSize reserved for this batch (at least the need at
//! kWORKSPACE_SM_COUNT SMs); if this device needs more, the scan runs unchunked (correct, slower)
//! and a warning is logged once. Throws on bad shapes or a failed launch.
void enqueueScan(bool bidirectional, ScanFields const& fields, nvinfer1::PluginTensorDesc const* inputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream);

//! Serialized form of the fields (the V2 adapter's plan blob): fixed size, tagged and versioned.
size_t serializedSize();
void serializeFields(bool bidirectional, ScanFields const& f, void* buffer);
ScanFields deserializeFields(bool bidirectional, void const* data, size_t length);

} // namespace plugin
} // namespace vim
