// TensorRT IPluginV3 "UpFirDn2d" (namespace "cptr", version "1").
//
// One input x [N, C, H, W] (kFLOAT or kHALF, linear), one output of the same type,
// [N, C, (H*up + pad0 + pad1 - kh) // down + 1, (W*up + pad0 + pad1 - kw) // down + 1].
// Fields (the same on both axes; rosinality's upfirdn2d semantics, the kernel is flipped):
//   up INT32 (default 1), down INT32 (default 1), pad0 INT32 (default 0), pad1 INT32 (default 0),
//   kernel FLOAT32[kh * kw] row-major (required), kh INT32, kw INT32 (default: both sqrt(len(kernel))
//   when that is a whole number). kh, kw <= 16.
#pragma once

#include <string>
#include <vector>

#include "plugin_base.h"

namespace cptr {
namespace trt {

struct UpFirDn2dConfig {
    static constexpr char const* kName = "UpFirDn2d";

    int32_t up = 1;
    int32_t down = 1;
    int32_t pad0 = 0;
    int32_t pad1 = 0;
    int32_t kh = 0;
    int32_t kw = 0;
    std::vector<float> kernel;

    // Parses and validates plugin fields; throws std::invalid_argument with the reason.
    static UpFirDn2dConfig fromFields(nvinfer1::PluginFieldCollection const* fc);
    // Output length of one axis for input length `in` (< 1 when nothing is left).
    int64_t outSize(int64_t in, int32_t k) const;
    std::string describe() const;
    std::vector<nvinfer1::PluginField> fields();
};

class UpFirDn2dPlugin final : public PluginBase<UpFirDn2dPlugin, UpFirDn2dConfig> {
public:
    static constexpr int32_t kNbInputs = 1;

    using PluginBase::PluginBase;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                            int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;

private:
    bool checkInputDims(nvinfer1::Dims const& dims) const;
};

using UpFirDn2dPluginCreator = PluginCreator<UpFirDn2dPlugin>;

}  // namespace trt
}  // namespace cptr
