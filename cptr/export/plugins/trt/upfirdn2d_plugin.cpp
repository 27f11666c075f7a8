#include "upfirdn2d_plugin.h"

#include <cmath>
#include <exception>
#include <sstream>
#include <stdexcept>

using namespace nvinfer1;

namespace cptr {
namespace trt {

// ------------------------------------------------------------------------------------ config

UpFirDn2dConfig UpFirDn2dConfig::fromFields(PluginFieldCollection const* fc) {
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

int64_t UpFirDn2dConfig::outSize(int64_t in, int32_t k) const { return upfirdn2d_out_size(in, up, down, pad0, pad1, k); }

std::string UpFirDn2dConfig::describe() const {
    std::ostringstream s;
    s << kName << "(up=" << up << ", down=" << down << ", pad=(" << pad0 << ", " << pad1 << "), kernel=" << kh << "x"
      << kw << ")";
    return s.str();
}

std::vector<PluginField> UpFirDn2dConfig::fields() {
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

// ------------------------------------------------------------------------------------ plugin

bool UpFirDn2dPlugin::checkInputDims(Dims const& dims) const {
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

int32_t UpFirDn2dPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                         DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
    if (!checkCounts(nbInputs, nbOutputs)) return -1;
    // The smallest shape of the profile must still produce an output.
    return checkInputDims(in[0].desc.dims) && checkInputDims(in[0].min) ? 0 : -1;
}

int32_t UpFirDn2dPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                                         int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                                         IExprBuilder& b) noexcept {
    if (!checkCounts(nbInputs, nbOutputs)) return -1;
    if (inputs[0].nbDims != 4) {
        logError(mDescription + ": expects one NCHW input");
        return -1;
    }
    outputs[0].nbDims = 4;
    outputs[0].d[0] = inputs[0].d[0];
    outputs[0].d[1] = inputs[0].d[1];
    for (int i = 2; i < 4; ++i) {
        int32_t const k = i == 2 ? mConfig.kh : mConfig.kw;
        // (in * up + pad0 + pad1 - k) // down + 1
        IDimensionExpr const* upsampled = b.operation(DimensionOperation::kPROD, *inputs[0].d[i], *b.constant(mConfig.up));
        IDimensionExpr const* padded =
            b.operation(DimensionOperation::kSUM, *upsampled, *b.constant(mConfig.pad0 + mConfig.pad1 - k));
        IDimensionExpr const* down = b.operation(DimensionOperation::kFLOOR_DIV, *padded, *b.constant(mConfig.down));
        outputs[0].d[i] = b.operation(DimensionOperation::kSUM, *down, *b.constant(1));
    }
    return 0;
}

bool UpFirDn2dPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                                int32_t nbOutputs) noexcept {
    if (!countsMatch(nbInputs, nbOutputs) || pos < 0 || pos > kNbInputs) return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR) return false;
    if (pos == 0) return d.type == DataType::kFLOAT || d.type == DataType::kHALF;
    return d.type == inOut[0].desc.type;
}

int32_t UpFirDn2dPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out,
                                       int32_t nbOutputs) noexcept {
    if (!checkCounts(nbInputs, nbOutputs)) return -1;
    if (!checkInputDims(in[0].dims)) return -1;
    if (out[0].dims.nbDims != 4 || out[0].dims.d[2] != mConfig.outSize(in[0].dims.d[2], mConfig.kh) ||
        out[0].dims.d[3] != mConfig.outSize(in[0].dims.d[3], mConfig.kw)) {
        logError(mDescription + ": output " + dimsText(out[0].dims) + " does not match input " + dimsText(in[0].dims));
        return -1;
    }
    return 0;
}

int32_t UpFirDn2dPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
                                 void const* const* inputs, void* const* outputs, void* /*workspace*/,
                                 cudaStream_t stream) noexcept {
    try {
        Dims const& d = inputDesc[0].dims;
        DType dtype{};
        if (!toKernelDType(inputDesc[0].type, &dtype) || outputDesc[0].type != inputDesc[0].type) {
            logError(mDescription + ": unsupported data type (kFLOAT and kHALF are supported)");
            return -1;
        }
        UpFirDn2dParams p;
        p.up_x = p.up_y = mConfig.up;
        p.down_x = p.down_y = mConfig.down;
        p.pad_x0 = p.pad_y0 = mConfig.pad0;
        p.pad_x1 = p.pad_y1 = mConfig.pad1;
        cudaError_t const err =
            upfirdn2d(inputs[0], outputs[0], dtype, static_cast<int64_t>(d.d[0]) * d.d[1], static_cast<int>(d.d[2]),
                      static_cast<int>(d.d[3]), mConfig.kernel.data(), /*taps_on_device=*/false, mConfig.kh,
                      mConfig.kw, p, stream);
        return launchStatus(mDescription, d, err);
    } catch (std::exception const& e) {
        logError(mDescription + ": enqueue failed: " + e.what());
    }
    return -1;
}

}  // namespace trt
}  // namespace cptr
