/*
 * The parameters of one selective-scan call (see selectiveScanKernel.h for the semantics and
 * layouts). Free of CUDA headers, so host-only code (the CPU implementation in plugins/ort_ops, the
 * ONNX Runtime CPU kernel) shares the exact contract the CUDA core launches with.
 */
#pragma once

#include <cstdint>

namespace vim
{

enum class ScanDType : int32_t
{
    kFLOAT = 0,
    kHALF = 1,
    kBF16 = 2,
};

//! Which output kernel takes a launch.
enum class ScanKernel : int32_t
{
    kAuto = 0,            //!< the launcher's choice (what every runtime uses)
    kWarpSpecialized = 1, //!< the warp-specialised kernel wherever it can run, however few blocks (tests);
                          //!< launches it cannot take (fp32, lanes, chunks, unaligned rows) keep the other
};

//! Pointers of one scan direction (device memory for the CUDA core, host memory for the CPU one).
struct ScanDirection
{
    void const* u{nullptr};
    void const* delta{nullptr};
    float const* A{nullptr};
    void const* B{nullptr};
    void const* C{nullptr};
    float const* D{nullptr};        //!< may be null (no skip term)
    void const* z{nullptr};         //!< may be null (no gating)
    float const* deltaBias{nullptr}; //!< may be null
    bool reverse{false};
    //! Batch strides in elements (0 = contiguous). Rows (channels of u/delta/z, states of B/C) are
    //! rowStride apart and tokens adjacent. A batch stride >= rows * rowStride lets a caller pass slices
    //! of a bigger tensor (z of an (in_proj) output holding x and z, B/C of x_proj's output); one with
    //! batch * batchStride <= rowStride (and >= seqlen) is the channel-major layout, (rows, batch,
    //! tokens), in which the projections around the scan are single matrix products over every image.
    int64_t uBatchStride{0};
    int64_t deltaBatchStride{0};
    int64_t zBatchStride{0};
    int64_t bBatchStride{0};
    int64_t cBatchStride{0};
};

struct SelectiveScanParams
{
    int32_t batch{0};
    int32_t dim{0};
    int32_t seqlen{0};
    int32_t dstate{0};
    ScanDType dtype{ScanDType::kFLOAT};
    bool deltaSoftplus{true};
    int32_t numDirections{1};   //!< 1, or 2 for the fused bidirectional form
    ScanDirection dir[2];
    float outScale{1.0f};       //!< multiplies the (summed) output
    void* out{nullptr};
    int32_t numChunks{0};       //!< sequence chunks; 0 = choose (see selectiveScanChooseChunks)
    int32_t smCount{0};         //!< used when choosing chunks; 0 = query the current device
    int32_t lanesPerChannel{0}; //!< lanes sharing a channel's states (1, 2, 4, 8; N <= 16); 0 = choose
    ScanKernel kernel{ScanKernel::kAuto};
    //! Elements between consecutive rows (channels of u/delta/z/out, states of B/C); 0 = seqlen. A
    //! larger stride lets rows be padded (e.g. to a multiple of 8 tokens, so that the matrix products
    //! around the scan get aligned operands); tokens seqlen..rowStride-1 are neither read nor written.
    int32_t rowStride{0};
    //! Elements between batches of out; 0 = dim * rowStride. Channel-major outputs: see ScanDirection.
    int64_t outBatchStride{0};
};

} // namespace vim
