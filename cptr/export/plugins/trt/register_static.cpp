// Self-registration: loading the library (dlopen, LD_PRELOAD, ctypes.CDLL, Triton's
// --backend-config=tensorrt,plugins=..., trtexec --staticPlugins) registers both creators with
// TensorRT's global plugin registry under namespace "cptr". Links against libnvinfer.
#include "bias_act_plugin.h"
#include "upfirdn2d_plugin.h"

namespace cptr {
namespace trt {
namespace {

template <typename Creator>
class Registrar {
public:
    Registrar() {
        if (!getPluginRegistry()->registerCreator(mCreator, kPluginNamespace)) {
            logWarning(std::string("could not register ") + mCreator.getPluginName() + " in namespace '" +
                       kPluginNamespace + "' (already registered?)");
        }
    }

private:
    Creator mCreator{};
};

Registrar<UpFirDn2dPluginCreator> const gUpFirDn2dRegistrar{};
Registrar<BiasLeakyReLUPluginCreator> const gBiasLeakyReLURegistrar{};

}  // namespace
}  // namespace trt
}  // namespace cptr
