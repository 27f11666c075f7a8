// Self-registration: loading the library (dlopen, LD_PRELOAD, ctypes.CDLL, Triton's
// --backend-config=tensorrt,plugins=..., trtexec --staticPlugins) registers both creators with
// TensorRT's global plugin registry under namespace "cptr". Links against libnvinfer.
#include <initializer_list>
#include <string>

#include "plugin_common.h"
#include "plugins.h"

namespace cptr {
namespace trt {
namespace {

struct Registrar {
    Registrar() {
        for (nvinfer1::IPluginCreatorV3One* creator : {&upFirDn2dCreator(), &biasLeakyReLUCreator()}) {
            if (!getPluginRegistry()->registerCreator(*creator, kPluginNamespace)) {
                logWarning(std::string("could not register ") + creator->getPluginName() + " in namespace '" +
                           kPluginNamespace + "' (already registered?)");
            }
        }
    }
};

Registrar const gRegistrar{};

}  // namespace
}  // namespace trt
}  // namespace cptr
