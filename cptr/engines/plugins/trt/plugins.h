// The CPTR TensorRT plugins, all IPluginV3 in namespace "cptr", version "1". Each op's plugin lives in its
// own .cpp file (the config it parses, its shape checks and its kernel launch; the rest is plugin_base.h);
// what the registration needs is its creator, one instance for the library, made on first use.
#pragma once

#include <NvInferRuntime.h>

namespace cptr {
namespace trt {

// "UpFirDn2d" (upfirdn2d_plugin.cpp): x [N, C, H, W] -> upsample, pad, FIR filter, downsample.
nvinfer1::IPluginCreatorV3One& upFirDn2dCreator();

// "FusedBiasLeakyReLU" (bias_act_plugin.cpp): x [N, C, ...], bias [C] -> leaky_relu(x + bias) * scale.
nvinfer1::IPluginCreatorV3One& biasLeakyReLUCreator();

}  // namespace trt
}  // namespace cptr
