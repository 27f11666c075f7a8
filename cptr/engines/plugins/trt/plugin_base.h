// What every CPTR IPluginV3 plugin and creator share, written once.
//
// A plugin is described by its Config:
//   static constexpr char const* kName;           plugin name (version kPluginVersion, namespace kPluginNamespace)
//   static Config fromFields(PluginFieldCollection const*);   parses and validates; throws std::invalid_argument
//   std::string describe() const;                 "Name(field=value, ...)" for logs and the timing cache
//   std::vector<PluginField> fields();            the fields, pointing at this config's members
// PluginBase<Derived, Config> implements every IPluginV3 method: capabilities, clone, names, one output of the
// first input's type, no workspace, serialization, and around the op's own parts the checks every op makes
// (input/output counts, linear kFLOAT/kHALF tensors, the enqueue dtype and its exceptions). Derived gives
//   static constexpr int32_t kNbInputs;
//   bool checkBuildShapes(DynamicPluginTensorDesc const* in) const;        configurePlugin: the profile's shapes
//   bool outputShape(DimsExprs const* inputs, DimsExprs& output, IExprBuilder&) const;   getOutputShapes
//   bool checkRuntimeShapes(PluginTensorDesc const* in, PluginTensorDesc const& output) const;   onShapeChange
//   int32_t launch(PluginTensorDesc const* in, void const* const* inputs, void* output, DType, cudaStream_t) const;
//                                                  enqueue: the kernel launch, its status from launchStatus()
// and, where an input after the first may have another type than the first: static bool acceptsType(pos, type, x).
// The checks log their reason with logError() and return false.
// PluginCreator<Plugin> is the matching IPluginCreatorV3One.
#pragma once

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "plugin_common.h"

namespace cptr {
namespace trt {

template <typename Derived, typename Config>
class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime {
public:
    using ConfigType = Config;

    explicit PluginBase(Config config)
        : mConfig(std::move(config)), mDescription(mConfig.describe()), mSerialFields(mConfig.fields()) {
        mSerialCollection.nbFields = static_cast<int32_t>(mSerialFields.size());
        mSerialCollection.fields = mSerialFields.data();
    }
    // mSerialFields points into mConfig: never copy or move a plugin, clone it.
    PluginBase(PluginBase const&) = delete;
    PluginBase& operator=(PluginBase const&) = delete;
    ~PluginBase() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override {
        switch (type) {
            case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
            case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
            case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }

    nvinfer1::IPluginV3* clone() noexcept override {
        try {
            return new Derived(mConfig);
        } catch (std::exception const& e) {
            logError(mDescription + ": clone failed: " + e.what());
        }
        return nullptr;
    }

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return Config::kName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuild: one output, of the first input's type, and no workspace.
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                               nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override {
        if (!countsMatch(nbInputs, nbOutputs)) return -1;
        outputTypes[0] = inputTypes[0];
        return 0;
    }
    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override {
        if (!checkCounts(nbInputs, nbOutputs)) return -1;
        return derived().checkBuildShapes(in) ? 0 : -1;
    }
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* /*shapeInputs*/,
                            int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override {
        if (!checkCounts(nbInputs, nbOutputs)) return -1;
        return derived().outputShape(inputs, outputs[0], exprBuilder) ? 0 : -1;
    }
    // Linear tensors only; the first input kFLOAT or kHALF, the output of its type, other inputs as acceptsType says.
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override {
        if (!countsMatch(nbInputs, nbOutputs) || pos < 0 || pos > Derived::kNbInputs) return false;
        nvinfer1::PluginTensorDesc const& d = inOut[pos].desc;
        if (d.format != nvinfer1::TensorFormat::kLINEAR) return false;
        if (pos == 0) return d.type == nvinfer1::DataType::kFLOAT || d.type == nvinfer1::DataType::kHALF;
        return Derived::acceptsType(pos, d.type, inOut[0].desc.type);
    }
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
                            nvinfer1::DynamicPluginTensorDesc const* /*outputs*/,
                            int32_t /*nbOutputs*/) const noexcept override {
        return 0;
    }
    // Timing depends on the configuration, not on parameter values; TensorRT adds shapes and formats.
    char const* getTimingCacheID() noexcept override { return mDescription.c_str(); }
    char const* getMetadataString() noexcept override { return mDescription.c_str(); }

    // IPluginV3OneRuntime
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override {
        return clone();
    }
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override { return &mSerialCollection; }
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override {
        if (!checkCounts(nbInputs, nbOutputs)) return -1;
        return derived().checkRuntimeShapes(in, out[0]) ? 0 : -1;
    }
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* /*workspace*/,
                    cudaStream_t stream) noexcept override {
        try {
            DType dtype{};
            if (!toKernelDType(inputDesc[0].type, &dtype) || outputDesc[0].type != inputDesc[0].type) {
                logError(mDescription + ": unsupported data type (kFLOAT and kHALF are supported)");
                return -1;
            }
            return derived().launch(inputDesc, inputs, outputs[0], dtype, stream);
        } catch (std::exception const& e) {
            logError(mDescription + ": enqueue failed: " + e.what());
        }
        return -1;
    }

    // An input after the first (pos >= 1, or the output at pos == kNbInputs) has the first input's type;
    // Derived declares its own acceptsType to allow more.
    static bool acceptsType(int32_t /*pos*/, nvinfer1::DataType type, nvinfer1::DataType first) { return type == first; }

protected:
    Derived const& derived() const { return static_cast<Derived const&>(*this); }
    // True when TensorRT passes Derived::kNbInputs inputs and one output (quiet: for per-format queries).
    static bool countsMatch(int32_t nbInputs, int32_t nbOutputs) {
        return nbInputs == Derived::kNbInputs && nbOutputs == 1;
    }
    // countsMatch, logging "<description>: expects N input(s) and 1 output, got ..." when false.
    bool checkCounts(int32_t nbInputs, int32_t nbOutputs) const {
        if (countsMatch(nbInputs, nbOutputs)) return true;
        logError(mDescription + ": expects " + std::to_string(Derived::kNbInputs) + " input(s) and 1 output, got " +
                 std::to_string(nbInputs) + " and " + std::to_string(nbOutputs));
        return false;
    }

    Config mConfig;
    std::string const mDescription;

private:
    std::vector<nvinfer1::PluginField> mSerialFields;
    nvinfer1::PluginFieldCollection mSerialCollection{};
};

template <typename Plugin>
class PluginCreator : public nvinfer1::IPluginCreatorV3One {
    using Config = typename Plugin::ConfigType;

public:
    // The advertised fields point at a default configuration (zero-length for required arrays).
    PluginCreator() : mFields(mDefaults.fields()) {
        mCollection.nbFields = static_cast<int32_t>(mFields.size());
        mCollection.fields = mFields.data();
    }
    PluginCreator(PluginCreator const&) = delete;
    PluginCreator& operator=(PluginCreator const&) = delete;
    ~PluginCreator() override = default;

    char const* getPluginName() const noexcept override { return Config::kName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &mCollection; }

    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase /*phase*/) noexcept override {
        try {
            return new Plugin(Config::fromFields(fc));
        } catch (std::exception const& e) {
            logError(std::string("cannot create ") + Config::kName + " layer '" + (name ? name : "") + "': " +
                     e.what());
        }
        return nullptr;
    }

private:
    Config mDefaults{};
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

}  // namespace trt
}  // namespace cptr
