// TensorRT IPluginV3 "FusedBiasLeakyReLU" (namespace "cptr", version "1").
//
//   y = leaky_relu(x + bias[c], negative_slope) * scale
// Inputs: x [N, C, ...] (rank >= 2, kFLOAT or kHALF, linear) and bias [C] (same type as x, or kFLOAT;
// in ONNX usually an initializer; pass zeros for "no bias"). Output: same shape and type as x.
// Fields: negative_slope FLOAT32 (default 0.2), scale FLOAT32 (default sqrt(2)).
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "plugin_base.h"
#include "plugins.h"

using namespace nvinfer1;

namespace cptr {
namespace trt {
namespace {

// ------------------------------------------------------------------------------------ config

struct BiasLeakyReLUConfig {
    static constexpr char const* kName = "FusedBiasLeakyReLU";

    float negative_slope = 0.2f;
    float scale = 1.41421356237309515f;

    static BiasLeakyReLUConfig fromFields(PluginFieldCollection const* fc) {
        FieldReader const f(fc);
        BiasLeakyReLUConfig c;
        c.negative_slope = f.getFloat("negative_slope", c.negative_slope);
        c.scale = f.getFloat("scale", c.scale);
        if (!std::isfinite(c.negative_slope) || !std::isfinite(c.scale)) {
            throw std::invalid_argument("FusedBiasLeakyReLU: 'negative_slope' and 'scale' must be finite");
        }
        return c;
    }

    std::string describe() const {
        std::ostringstream s;
        s << kName << "(negative_slope=" << negative_slope << ", scale=" << scale << ")";
        return s.str();
    }

    std::vector<PluginField> fields() {
        return {
            PluginField("negative_slope", &negative_slope, PluginFieldType::kFLOAT32, 1),
            PluginField("scale", &scale, PluginFieldType::kFLOAT32, 1),
        };
    }
};

// ------------------------------------------------------------------------------------ plugin

class BiasLeakyReLUPlugin final : public PluginBase<BiasLeakyReLUPlugin, BiasLeakyReLUConfig> {
public:
    static constexpr int32_t kNbInputs = 2;

    using PluginBase::PluginBase;

    // The bias (pos 1) may stay kFLOAT under a kHALF x.
    static bool acceptsType(int32_t pos, DataType type, DataType x) {
        return type == x || (pos == 1 && type == DataType::kFLOAT);
    }

    bool checkBuildShapes(DynamicPluginTensorDesc const* in) const { return checkShapes(in[0].desc.dims, in[1].desc.dims); }

    bool outputShape(DimsExprs const* inputs, DimsExprs& output, IExprBuilder& /*b*/) const {
        if (inputs[0].nbDims < 2 || inputs[1].nbDims != 1) {
            logError(mDescription + ": expects x [N, C, ...] and bias [C]");
            return false;
        }
        output = inputs[0];
        return true;
    }

    bool checkRuntimeShapes(PluginTensorDesc const* in, PluginTensorDesc const& output) const {
        if (!checkShapes(in[0].dims, in[1].dims) || in[1].dims.d[0] != in[0].dims.d[1]) return false;
        return output.dims.nbDims == in[0].dims.nbDims;
    }

    int32_t launch(PluginTensorDesc const* in, void const* const* inputs, void* output, DType dtype, cudaStream_t stream) const {
        Dims const& d = in[0].dims;
        DType bias_dtype{};
        if (!toKernelDType(in[1].type, &bias_dtype) || in[1].dims.nbDims != 1 || in[1].dims.d[0] != d.d[1]) {
            logError(mDescription + ": bias " + dimsText(in[1].dims) + " must be [C] (kFLOAT or x's type)");
            return -1;
        }
        int64_t s = 1;
        for (int32_t i = 2; i < d.nbDims; ++i) s *= d.d[i];
        cudaError_t const err = bias_leaky_relu(inputs[0], inputs[1], bias_dtype, output, dtype, d.d[0], d.d[1], s,
                                                mConfig.negative_slope, mConfig.scale, stream);
        return launchStatus(mDescription, d, err);
    }

private:
    bool checkShapes(Dims const& x, Dims const& bias) const {
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
};

}  // namespace

IPluginCreatorV3One& biasLeakyReLUCreator() {
    static PluginCreator<BiasLeakyReLUPlugin> creator;
    return creator;
}

}  // namespace trt
}  // namespace cptr
