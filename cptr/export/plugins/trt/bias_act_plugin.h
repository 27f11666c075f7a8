// TensorRT IPluginV3 "FusedBiasLeakyReLU" (namespace "cptr", version "1").
//
//   y = leaky_relu(x + bias[c], negative_slope) * scale
// Inputs: x [N, C, ...] (rank >= 2, kFLOAT or kHALF, linear) and bias [C] (same type as x, or kFLOAT;
// in ONNX usually an initializer; pass zeros for "no bias"). Output: same shape and type as x.
// Fields: negative_slope FLOAT32 (default 0.2), scale FLOAT32 (default sqrt(2)).
#pragma once

#include <string>
#include <vector>

#include "plugin_base.h"

namespace cptr {
namespace trt {

struct BiasLeakyReLUConfig {
    static constexpr char const* kName = "FusedBiasLeakyReLU";

    float negative_slope = 0.2f;
    float scale = 1.41421356237309515f;

    static BiasLeakyReLUConfig fromFields(nvinfer1::PluginFieldCollection const* fc);
    std::string describe() const;
    std::vector<nvinfer1::PluginField> fields();
};

class BiasLeakyReLUPlugin final : public PluginBase<BiasLeakyReLUPlugin, BiasLeakyReLUConfig> {
public:
    static constexpr int32_t kNbInputs = 2;

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
    bool checkShapes(nvinfer1::Dims const& x, nvinfer1::Dims const& bias) const;
};

using BiasLeakyReLUPluginCreator = PluginCreator<BiasLeakyReLUPlugin>;

}  // namespace trt
}  // namespace cptr
