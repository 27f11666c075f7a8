// TensorRT IPluginV3 "UpFirDn2d" (namespace "cptr", version "1").
//
// One input x [N, C, H, W] (kFLOAT or kHALF, linear), one output of the same type,
// [N, C, (H*up + pad0 + pad1 - kh) // down + 1, (W*up + pad0 + pad1 - kw) // down + 1].
// Fields (the same on both axes; rosinality's upfirdn2d semantics, the kernel is flipped):
//   up INT32 (default 1), down INT32 (default 1), pad0 INT32 (default 0), pad1 INT32 (default 0),
//   kernel FLOAT32[kh * kw] row-major (required), kh INT32, kw INT32 (default: both sqrt(len(kernel))
//   when that is a whole number). kh, kw <= 16.
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
    static UpFirDn2dConfig fromFields(PluginFieldCollection const* fc) {
        FieldReader const f(fc);
        UpFirDn2dConfig c;
        c.up = f.getInt("up", 1);
        c.down = f.getInt("down", 1);
        c.pad0 = f.getInt("pad0", 0);
        c.pad1 = f.getInt("pad1", 0);
        c.kernel = f.requireFloats("kernel");
        auto const n = static_cast<int32_t>(c.kernel.size());
        if (f.has("kh") || f.has("kw")) {
            c.kh = f.requireInt("kh");
            c.kw = f.requireInt("kw");
        } else {
            auto const side = static_cast<int32_t>(std::lround(std::sqrt(static_cast<double>(n))));
            if (side * side != n) {
                throw std::invalid_argument("UpFirDn2d: 'kernel' has " + std::to_string(n) +
                                            " taps, not a square; give 'kh' and 'kw'");
            }
            c.kh = c.kw = side;
        }
        if (c.up < 1 || c.down < 1) {
            throw std::invalid_argument("UpFirDn2d: 'up' and 'down' must be >= 1, got up=" + std::to_string(c.up) +
                                        " down=" + std::to_string(c.down));
        }
        if (c.kh < 1 || c.kw < 1 || c.kh > kMaxFirSide || c.kw > kMaxFirSide) {
            throw std::invalid_argument("UpFirDn2d: kernel must be between 1x1 and " + std::to_string(kMaxFirSide) + "x" +
                                        std::to_string(kMaxFirSide) + ", got " + std::to_string(c.kh) + "x" +
                                        std::to_string(c.kw));
        }
        if (c.kh * c.kw != n) {
            throw std::invalid_argument("UpFirDn2d: 'kernel' has " + std::to_string(n) + " taps but kh*kw = " +
                                        std::to_string(c.kh * c.kw));
        }
        for (float v : c.kernel) {
            if (!std::isfinite(v)) throw std::invalid_argument("UpFirDn2d: 'kernel' contains a non-finite tap");
        }
        return c;
    }

    // Output length of one axis for input length `in` (< 1 when nothing is left).
    int64_t outSize(int64_t in, int32_t k) const { return upfirdn2d_out_size(in, up, down, pad0, pad1, k); }

    std::string describe() const {
        std::ostringstream s;
        s << kName << "(up=" << up << ", down=" << down << ", pad=(" << pad0 << ", " << pad1 << "), kernel=" << kh
          << "x" << kw << ")";
        return s.str();
    }

    std::vector<PluginField> fields() {
        return {
            PluginField("up", &up, PluginFieldType::kINT32, 1),
            PluginField("down", &down, PluginFieldType::kINT32, 1),
            PluginField("pad0", &pad0, PluginFieldType::kINT32, 1),
            PluginField("pad1", &pad1, PluginFieldType::kINT32, 1),
            PluginField("kernel", kernel.data(), PluginFieldType::kFLOAT32, static_cast<int32_t>(kernel.size())),
            PluginField("kh", &kh, PluginFieldType::kINT32, 1),
            PluginField("kw", &kw, PluginFieldType::kINT32, 1),
        };
    }
};

// ------------------------------------------------------------------------------------ plugin

class UpFirDn2dPlugin final : public PluginBase<UpFirDn2dPlugin, UpFirDn2dConfig> {
public:
    static constexpr int32_t kNbInputs = 1;

    using PluginBase::PluginBase;

    // The smallest shape of the profile must still produce an output.
    bool checkBuildShapes(DynamicPluginTensorDesc const* in) const {
        return checkInputDims(in[0].desc.dims) && checkInputDims(in[0].min);
    }

    bool outputShape(DimsExprs const* inputs, DimsExprs& output, IExprBuilder& b) const {
        if (inputs[0].nbDims != 4) {
            logError(mDescription + ": expects one NCHW input");
            return false;
        }
        output.nbDims = 4;
        output.d[0] = inputs[0].d[0];
        output.d[1] = inputs[0].d[1];
        for (int i = 2; i < 4; ++i) {
            int32_t const k = i == 2 ? mConfig.kh : mConfig.kw;
            // (in * up + pad0 + pad1 - k) // down + 1
            IDimensionExpr const* upsampled =
                b.operation(DimensionOperation::kPROD, *inputs[0].d[i], *b.constant(mConfig.up));
            IDimensionExpr const* padded =
                b.operation(DimensionOperation::kSUM, *upsampled, *b.constant(mConfig.pad0 + mConfig.pad1 - k));
            IDimensionExpr const* down = b.operation(DimensionOperation::kFLOOR_DIV, *padded, *b.constant(mConfig.down));
            output.d[i] = b.operation(DimensionOperation::kSUM, *down, *b.constant(1));
        }
        return true;
    }

    bool checkRuntimeShapes(PluginTensorDesc const* in, PluginTensorDesc const& output) const {
        if (!checkInputDims(in[0].dims)) return false;
        if (output.dims.nbDims != 4 || output.dims.d[2] != mConfig.outSize(in[0].dims.d[2], mConfig.kh) ||
            output.dims.d[3] != mConfig.outSize(in[0].dims.d[3], mConfig.kw)) {
            logError(mDescription + ": output " + dimsText(output.dims) + " does not match input " + dimsText(in[0].dims));
            return false;
        }
        return true;
    }

    int32_t launch(PluginTensorDesc const* in, void const* const* inputs, void* output, DType dtype, cudaStream_t stream) const {
        Dims const& d = in[0].dims;
        UpFirDn2dParams p;
        p.up_x = p.up_y = mConfig.up;
        p.down_x = p.down_y = mConfig.down;
        p.pad_x0 = p.pad_y0 = mConfig.pad0;
        p.pad_x1 = p.pad_y1 = mConfig.pad1;
        cudaError_t const err =
            upfirdn2d(inputs[0], output, dtype, static_cast<int64_t>(d.d[0]) * d.d[1], static_cast<int>(d.d[2]),
                      static_cast<int>(d.d[3]), mConfig.kernel.data(), /*taps_on_device=*/false, mConfig.kh, mConfig.kw,
                      p, stream);
        return launchStatus(mDescription, d, err);
    }

private:
    bool checkInputDims(Dims const& dims) const {
        if (dims.nbDims != 4) {
            logError(mDescription + ": input must be NCHW (4 dims), got " + dimsText(dims));
            return false;
        }
        for (int i = 2; i < 4; ++i) {
            int32_t const k = i == 2 ? mConfig.kh : mConfig.kw;
            if (dims.d[i] >= 0 && mConfig.outSize(dims.d[i], k) < 1) {
                logError(mDescription + ": input " + dimsText(dims) + " leaves an empty output");
                return false;
            }
        }
        return true;
    }
};

}  // namespace

IPluginCreatorV3One& upFirDn2dCreator() {
    static PluginCreator<UpFirDn2dPlugin> creator;
    return creator;
}

}  // namespace trt
}  // namespace cptr
