// Entry points for IPluginRegistry::loadLibrary (trtexec --dynamicPlugins, Python
// trt.get_plugin_registry().load_library(path), plugins serialized into version-compatible plans):
// TensorRT calls getCreators() and registers what it returns. No static registration, no link
// dependency on libnvinfer.
#include "bias_act_plugin.h"
#include "upfirdn2d_plugin.h"

// CPTR_EXPORT only exports when building TensorRT itself; the library is built with hidden visibility.
#define CPTR_EXPORT __attribute__((visibility("default")))

extern "C" {

CPTR_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
    cptr::trt::setLoggerFinder(finder);
}

CPTR_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static cptr::trt::UpFirDn2dPluginCreator upfirdn2d;
    static cptr::trt::BiasLeakyReLUPluginCreator biasLeakyReLU;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&upfirdn2d, &biasLeakyReLU};
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}

}  // extern "C"
