#include "plugin_common.h"

#include <cuda_fp16.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace cptr {
namespace trt {
namespace {

std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept {
    std::string const text = std::string("[cptr plugin] ") + message;
    nvinfer1::ILoggerFinder* finder = gLoggerFinder.load();
    nvinfer1::ILogger* logger = finder != nullptr ? finder->findLogger() : nullptr;
    if (logger != nullptr) {
        logger->log(severity, text.c_str());
    } else {
        std::fprintf(stderr, "%s\n", text.c_str());
    }
}

}  // namespace

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept {
    nvinfer1::ILoggerFinder* expected = nullptr;
    gLoggerFinder.compare_exchange_strong(expected, finder);
}

void logError(std::string const& message) noexcept { log(nvinfer1::ILogger::Severity::kERROR, message); }

void logWarning(std::string const& message) noexcept { log(nvinfer1::ILogger::Severity::kWARNING, message); }

FieldReader::FieldReader(nvinfer1::PluginFieldCollection const* fc) : mFc(fc) {}

nvinfer1::PluginField const* FieldReader::find(char const* name) const {
    if (mFc == nullptr || mFc->fields == nullptr) return nullptr;
    for (int32_t i = 0; i < mFc->nbFields; ++i) {
        nvinfer1::PluginField const& f = mFc->fields[i];
        if (f.name != nullptr && std::strcmp(f.name, name) == 0) return &f;
    }
    return nullptr;
}

bool FieldReader::has(char const* name) const { return find(name) != nullptr; }

namespace {

// Value i of a numeric field as double; throws for non-numeric types.
double numericAt(nvinfer1::PluginField const& f, int32_t i) {
    using nvinfer1::PluginFieldType;
    switch (f.type) {
        case PluginFieldType::kINT8: return static_cast<int8_t const*>(f.data)[i];
        case PluginFieldType::kINT16: return static_cast<int16_t const*>(f.data)[i];
        case PluginFieldType::kINT32: return static_cast<int32_t const*>(f.data)[i];
        case PluginFieldType::kINT64: return static_cast<double>(static_cast<int64_t const*>(f.data)[i]);
        case PluginFieldType::kFLOAT16: return __half2float(static_cast<__half const*>(f.data)[i]);
        case PluginFieldType::kFLOAT32: return static_cast<float const*>(f.data)[i];
        case PluginFieldType::kFLOAT64: return static_cast<double const*>(f.data)[i];
        default: break;
    }
    throw std::invalid_argument(std::string("plugin field '") + f.name + "' has a non-numeric type");
}

bool isIntegral(nvinfer1::PluginFieldType t) {
    using nvinfer1::PluginFieldType;
    return t == PluginFieldType::kINT8 || t == PluginFieldType::kINT16 || t == PluginFieldType::kINT32 ||
           t == PluginFieldType::kINT64;
}

}  // namespace

int32_t FieldReader::getInt(char const* name, int32_t fallback) const {
    nvinfer1::PluginField const* f = find(name);
    if (f == nullptr) return fallback;
    if (!isIntegral(f->type) || f->length != 1 || f->data == nullptr) {
        throw std::invalid_argument(std::string("plugin field '") + name + "' must be one integer (INT32)");
    }
    double const v = numericAt(*f, 0);
    if (v < INT32_MIN || v > INT32_MAX) {
        throw std::invalid_argument(std::string("plugin field '") + name + "' is out of the int32 range");
    }
    return static_cast<int32_t>(v);
}

int32_t FieldReader::requireInt(char const* name) const {
    if (!has(name)) throw std::invalid_argument(std::string("plugin field '") + name + "' is required");
    return getInt(name, 0);
}

float FieldReader::getFloat(char const* name, float fallback) const {
    nvinfer1::PluginField const* f = find(name);
    if (f == nullptr) return fallback;
    if (f->length != 1 || f->data == nullptr) {
        throw std::invalid_argument(std::string("plugin field '") + name + "' must be one number (FLOAT32)");
    }
    return static_cast<float>(numericAt(*f, 0));
}

std::vector<float> FieldReader::requireFloats(char const* name) const {
    nvinfer1::PluginField const* f = find(name);
    if (f == nullptr) throw std::invalid_argument(std::string("plugin field '") + name + "' is required");
    if (f->length < 1 || f->data == nullptr) {
        throw std::invalid_argument(std::string("plugin field '") + name + "' is empty");
    }
    std::vector<float> out(static_cast<size_t>(f->length));
    for (int32_t i = 0; i < f->length; ++i) out[static_cast<size_t>(i)] = static_cast<float>(numericAt(*f, i));
    return out;
}

bool toKernelDType(nvinfer1::DataType type, DType* out) noexcept {
    switch (type) {
        case nvinfer1::DataType::kFLOAT: *out = DType::kFloat32; return true;
        case nvinfer1::DataType::kHALF: *out = DType::kFloat16; return true;
        default: return false;
    }
}

std::string cudaErrorText(cudaError_t err) {
    std::ostringstream s;
    s << cudaGetErrorName(err) << " (" << cudaGetErrorString(err) << ")";
    return s.str();
}

std::string dimsText(nvinfer1::Dims const& dims) {
    std::ostringstream s;
    s << "[";
    for (int32_t i = 0; i < dims.nbDims; ++i) s << (i ? ", " : "") << dims.d[i];
    s << "]";
    return s.str();
}

int32_t launchStatus(std::string const& description, nvinfer1::Dims const& input, cudaError_t err) noexcept {
    if (err == cudaSuccess) return 0;
    try {
        logError(description + ": kernel launch for input " + dimsText(input) + " failed: " + cudaErrorText(err));
    } catch (...) {
        logError("CPTR plugin: kernel launch failed");
    }
    return -1;
}

}  // namespace trt
}  // namespace cptr
