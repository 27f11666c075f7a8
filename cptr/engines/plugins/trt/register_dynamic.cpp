// Entry points for IPluginRegistry::loadLibrary (trtexec --dynamicPlugins, Python
// trt.get_plugin_registry().load_library(path), plugins serialized into version-compatible plans):
// TensorRT calls getCreators() and registers what it returns. No static registration, no link
// dependency on libnvinfer.
#include "plugin_common.h"
#include "plugins.h"

// CPTR_EXPORT only exports when building TensorRT itself; the library is built with hidden visibility.
#define CPTR_EXPORT __attribute__((visibility("default")))

extern "C" {

CPTR_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
    cptr::trt::setLoggerFinder(finder);
}

CPTR_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&cptr::trt::upFirDn2dCreator(),
                                                                   &cptr::trt::biasLeakyReLUCreator()};
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}

}  // extern "C"
