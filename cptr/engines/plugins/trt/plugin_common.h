// Shared pieces of the CPTR TensorRT plugins: names, logging, plugin-field parsing, dtype mapping.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cptr_kernels.h"  // cptr/ops/, on the include path of the cptr_kernels target

namespace cptr {
namespace trt {

// Every CPTR plugin is registered as <name> version "1" in namespace "cptr".
constexpr char const* kPluginNamespace = "cptr";
constexpr char const* kPluginVersion = "1";

// Logging goes to the TensorRT logger handed over through setLoggerFinder() (plugin libraries loaded
// with IPluginRegistry::loadLibrary) and to stderr otherwise.
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
void logError(std::string const& message) noexcept;
void logWarning(std::string const& message) noexcept;

// Read-only view of a PluginFieldCollection. Missing optional fields take their default; a present
// field of the wrong type or length throws std::invalid_argument naming the field.
class FieldReader {
public:
    explicit FieldReader(nvinfer1::PluginFieldCollection const* fc);

    bool has(char const* name) const;
    int32_t getInt(char const* name, int32_t fallback) const;
    int32_t requireInt(char const* name) const;
    float getFloat(char const* name, float fallback) const;
    std::vector<float> requireFloats(char const* name) const;

private:
    nvinfer1::PluginField const* find(char const* name) const;
    nvinfer1::PluginFieldCollection const* mFc;
};

// Kernel dtype of a TensorRT data type; false for types the kernels do not support.
bool toKernelDType(nvinfer1::DataType type, DType* out) noexcept;

// Text of a cudaError_t for log messages.
std::string cudaErrorText(cudaError_t err);

// "N x C x H x W" for log messages.
std::string dimsText(nvinfer1::Dims const& dims);

// enqueue()'s status after a kernel launch: 0 on success; otherwise logs
// "<description>: kernel launch for input <dims> failed: <error>" and returns -1.
int32_t launchStatus(std::string const& description, nvinfer1::Dims const& input, cudaError_t err) noexcept;

}  // namespace trt
}  // namespace cptr
