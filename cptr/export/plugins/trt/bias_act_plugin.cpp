#include "bias_act_plugin.h"

#include <cmath>
#include <exception>
#include <sstream>
#include <stdexcept>

using namespace nvinfer1;

namespace cptr {
namespace trt {

// ------------------------------------------------------------------------------------ config

BiasLeakyReLUConfig BiasLeakyReLUConfig::fromFields(PluginFieldCollection const* fc) {
    FieldReader const f(fc);
    BiasLeakyReLUConfig c;
    c.negative_slope = f.getFloat("negative_slope", c.negative_slope);
    c.scale = f.getFloat("scale", c.scale);
    if (!std::isfinite(c.negative_slope) || !std::isfinite(c.scale)) {
        throw std::invalid_argument("FusedBiasLeakyReLU: 'negative_slope' and 'scale' must be finite");
    }
    return c;
}

std::string BiasLeakyReLUConfig::describe() const {
    std::ostringstream s;
    s << kName << "(negative_slope=" << negative_slope << ", scale=" << scale << ")";
    return s.str();
}

std::vector<PluginField> BiasLeakyReLUConfig::fields() {
    return {
        PluginField("negative_slope", &negative_slope, PluginFieldType::kFLOAT32, 1),
        PluginField("scale", &scale, PluginFieldType::kFLOAT32, 1),
    };
}

// ------------------------------------------------------------------------------------ plugin

bool BiasLeakyReLUPlugin::checkShapes(Dims const& x, Dims const& bias) const {
    if (x.nbDims < 2) {
        logError(mDescription + ": input must have at least 2 dims [N, C, ...], got " + dimsText(x));
        return false;
    }
    bool const known = x.d[1] >= 0 && bias.nbDims == 1 && bias.d[0] >= 0;
    if (bias.nbDims != 1 || (known && bias.d[0] != x.d[1])) {
        logError(mDescription + ": bias " + dimsText(bias) + " does not match the channels of input " + dimsText(x));
        return false;
    }
    return true;
}

int32_t BiasLeakyReLUPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                             DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
    if (!checkCounts(nbInputs, nbOutputs)) return -1;
    return checkShapes(in[0].desc.dims, in[1].desc.dims) ? 0 : -1;
}

int32_t BiasLeakyReLUPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
                                             DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                             DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& /*b*/) noexcept {
    if (!checkCounts(nbInputs, nbOutputs)) return -1;
    if (inputs[0].nbDims < 2 || inputs[1].nbDims != 1) {
        logError(mDescription + ": expects x [N, C, ...] and bias [C]");
        return -1;
    }
    outputs[0] = inputs[0];
    return 0;
}

bool BiasLeakyReLUPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                    int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (!countsMatch(nbInputs, nbOutputs) || pos < 0 || pos > kNbInputs) return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR) return false;
    DataType const x = inOut[0].desc.type;
    if (pos == 0) return d.type == DataType::kFLOAT || d.type == DataType::kHALF;
    if (pos == 1) return d.type == x || d.type == DataType::kFLOAT;  // bias
    return d.type == x;                                            // output
}

int32_t BiasLeakyReLUPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out,
                                           int32_t nbOutputs) noexcept {
    if (!checkCounts(nbInputs, nbOutputs)) return -1;
    if (!checkShapes(in[0].dims, in[1].dims) || in[1].dims.d[0] != in[0].dims.d[1]) return -1;
    if (out[0].dims.nbDims != in[0].dims.nbDims) return -1;
    return 0;
}

int32_t BiasLeakyReLUPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
                                     void const* const* inputs, void* const* outputs, void* /*workspace*/,
                                     cudaStream_t stream) noexcept {
    try {
        Dims const& d = inputDesc[0].dims;
        DType dtype{};
        if (!toKernelDType(inputDesc[0].type, &dtype) || outputDesc[0].type != inputDesc[0].type) {
            logError(mDescription + ": unsupported data type (kFLOAT and kHALF are supported)");
            return -1;
        }
        DType bias_dtype{};
        if (!toKernelDType(inputDesc[1].type, &bias_dtype) || inputDesc[1].dims.nbDims != 1 ||
            inputDesc[1].dims.d[0] != d.d[1]) {
            logError(mDescription + ": bias " + dimsText(inputDesc[1].dims) + " must be [C] (kFLOAT or x's type)");
            return -1;
        }
        int64_t s = 1;
        for (int32_t i = 2; i < d.nbDims; ++i) s *= d.d[i];
        cudaError_t const err = bias_leaky_relu(inputs[0], inputs[1], bias_dtype, outputs[0], dtype, d.d[0], d.d[1], s,
                                                mConfig.negative_slope, mConfig.scale, stream);
        return launchStatus(mDescription, d, err);
    } catch (std::exception const& e) {
        logError(mDescription + ": enqueue failed: " + e.what());
    }
    return -1;
}

}  // namespace trt
}  // namespace cptr
