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

#include "plugin_common.h"

namespace cptr {
namespace trt {

struct UpFirDn2dConfig {
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
};

class UpFirDn2dPlugin : public nvinfer1::IPluginV3,
                        public nvinfer1::IPluginV3OneCore,
                        public nvinfer1::IPluginV3OneBuild,
                        public nvinfer1::IPluginV3OneRuntime {
public:
    explicit UpFirDn2dPlugin(UpFirDn2dConfig config);
    ~UpFirDn2dPlugin() override = default;

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
    char const* getTimingCacheID() noexcept override;
    char const* getMetadataString() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    bool checkInputDims(nvinfer1::Dims const& dims) const;

    UpFirDn2dConfig mConfig;
    std::string mDescription;
    std::vector<nvinfer1::PluginField> mSerialFields;
    nvinfer1::PluginFieldCollection mSerialCollection{};
};

class UpFirDn2dPluginCreator : public nvinfer1::IPluginCreatorV3One {
public:
    UpFirDn2dPluginCreator();
    ~UpFirDn2dPluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

}  // namespace trt
}  // namespace cptr
