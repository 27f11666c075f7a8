// CPU smoke test of the TensorRT plugin library, without TensorRT or a GPU.
//
// Loads libcptr_trt_plugins_dynamic.so with dlopen, takes the creators from getCreators() (the entry
// point IPluginRegistry::loadLibrary uses) and drives every build-time and serialization method the
// way TensorRT does: field parsing and validation, output shapes (through a constant-folding
// IExprBuilder), type/format negotiation, configure/onShapeChange checks, serialize -> re-create,
// clone. enqueue() needs a GPU and is not called.
//   g++ -std=c++17 -I<TensorRT include> -I<cuda include> plugin_smoke.cpp -ldl -o plugin_smoke
//   ./plugin_smoke path/to/libcptr_trt_plugins_dynamic.so
// Prints one line per check and "ALL OK" on success; exits 1 on the first failure.
#include <NvInferRuntime.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace {

int gChecks = 0;

void check(bool ok, std::string const& what) {
    ++gChecks;
    if (!ok) {
        std::printf("FAIL %s\n", what.c_str());
        std::exit(1);
    }
    std::printf("ok   %s\n", what.c_str());
}

// ---- constant-folding expression builder (stands in for TensorRT's during getOutputShapes)

class ConstValue : public apiv::VDimensionExpr {
public:
    explicit ConstValue(int64_t v) : mValue(v) {}
    bool isConstant() const override { return true; }
    int64_t getConstantValue() const override { return mValue; }
    bool isSizeTensor() const override { return false; }

private:
    int64_t mValue;
};

class ConstDim : public IDimensionExpr {
public:
    explicit ConstDim(int64_t v) : mValue(v) { mImpl = &mValue; }
    ~ConstDim() noexcept override = default;

private:
    ConstValue mValue;
};

int64_t floorDiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (q * b > a) ? q - 1 : q;
}

class ConstBuilderImpl : public apiv::VExprBuilder {
public:
    IDimensionExpr const* constant(int64_t value) override {
        mOwned.emplace_back(new ConstDim(value));
        return mOwned.back().get();
    }
    IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& a, IDimensionExpr const& b) override {
        int64_t const x = a.getConstantValue(), y = b.getConstantValue();
        int64_t r = 0;
        switch (op) {
            case DimensionOperation::kSUM: r = x + y; break;
            case DimensionOperation::kPROD: r = x * y; break;
            case DimensionOperation::kMAX: r = x > y ? x : y; break;
            case DimensionOperation::kMIN: r = x < y ? x : y; break;
            case DimensionOperation::kSUB: r = x - y; break;
            case DimensionOperation::kEQUAL: r = x == y; break;
            case DimensionOperation::kLESS: r = x < y; break;
            case DimensionOperation::kFLOOR_DIV: r = floorDiv(x, y); break;
            case DimensionOperation::kCEIL_DIV: r = -floorDiv(-x, y); break;
            default: return nullptr;
        }
        return constant(r);
    }
    IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override {
        return nullptr;
    }

private:
    std::vector<std::unique_ptr<ConstDim>> mOwned;
};

class ConstExprBuilder : public IExprBuilder {
public:
    ConstExprBuilder() { mImpl = &mBuilder; }
    ~ConstExprBuilder() noexcept override = default;
    DimsExprs dims(std::vector<int64_t> const& v) {
        DimsExprs e{};
        e.nbDims = static_cast<int32_t>(v.size());
        for (size_t i = 0; i < v.size(); ++i) e.d[i] = constant(v[i]);
        return e;
    }

private:
    ConstBuilderImpl mBuilder;
};

// ---- helpers

Dims makeDims(std::vector<int64_t> const& v) {
    Dims d{};
    d.nbDims = static_cast<int32_t>(v.size());
    for (size_t i = 0; i < v.size(); ++i) d.d[i] = v[i];
    return d;
}

DynamicPluginTensorDesc dynDesc(std::vector<int64_t> const& dims, DataType t, TensorFormat f = TensorFormat::kLINEAR) {
    DynamicPluginTensorDesc d{};
    d.desc.dims = makeDims(dims);
    d.desc.type = t;
    d.desc.format = f;
    d.min = d.max = d.opt = d.desc.dims;
    return d;
}

PluginTensorDesc desc(std::vector<int64_t> const& dims, DataType t) {
    PluginTensorDesc d{};
    d.dims = makeDims(dims);
    d.type = t;
    d.format = TensorFormat::kLINEAR;
    return d;
}

struct Fields {
    std::vector<PluginField> fields;
    std::vector<std::unique_ptr<std::vector<int32_t>>> ints;
    std::vector<std::unique_ptr<std::vector<float>>> floats;
    PluginFieldCollection fc{};

    Fields& i32(char const* name, std::vector<int32_t> v) {
        ints.emplace_back(new std::vector<int32_t>(std::move(v)));
        fields.emplace_back(name, ints.back()->data(), PluginFieldType::kINT32, static_cast<int32_t>(ints.back()->size()));
        return *this;
    }
    Fields& f32(char const* name, std::vector<float> v) {
        floats.emplace_back(new std::vector<float>(std::move(v)));
        fields.emplace_back(name, floats.back()->data(), PluginFieldType::kFLOAT32,
                            static_cast<int32_t>(floats.back()->size()));
        return *this;
    }
    PluginFieldCollection const* get() {
        fc.nbFields = static_cast<int32_t>(fields.size());
        fc.fields = fields.data();
        return &fc;
    }
};

std::vector<float> blur4(float gain) {
    float const t[4] = {1, 3, 3, 1};
    std::vector<float> k;
    for (float a : t)
        for (float b : t) k.push_back(a * b / 64.0f * gain);
    return k;
}

struct PluginPtr {
    IPluginV3* p = nullptr;
    explicit PluginPtr(IPluginV3* q) : p(q) {}
    ~PluginPtr() { delete p; }
    IPluginV3OneCore* core() { return static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE)); }
    IPluginV3OneBuild* build() {
        return static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
    }
    IPluginV3OneRuntime* runtime() {
        return static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    }
};

std::vector<int64_t> outShape(IPluginV3OneBuild* b, std::vector<std::vector<int64_t>> const& inputs) {
    ConstExprBuilder eb;
    std::vector<DimsExprs> in;
    for (auto const& v : inputs) in.push_back(eb.dims(v));
    DimsExprs out{};
    if (b->getOutputShapes(in.data(), static_cast<int32_t>(in.size()), nullptr, 0, &out, 1, eb) != 0) return {};
    std::vector<int64_t> r;
    for (int32_t i = 0; i < out.nbDims; ++i) r.push_back(out.d[i]->getConstantValue());
    return r;
}

std::string str(std::vector<int64_t> const& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    return s + "]";
}

// ---- tests

void testUpFirDn2d(IPluginCreatorV3One* creator) {
    PluginFieldCollection const* names = creator->getFieldNames();
    std::map<std::string, PluginFieldType> expected = {
        {"up", PluginFieldType::kINT32},   {"down", PluginFieldType::kINT32}, {"pad0", PluginFieldType::kINT32},
        {"pad1", PluginFieldType::kINT32}, {"kernel", PluginFieldType::kFLOAT32}, {"kh", PluginFieldType::kINT32},
        {"kw", PluginFieldType::kINT32}};
    check(names->nbFields == static_cast<int32_t>(expected.size()), "UpFirDn2d lists 7 fields");
    for (int32_t i = 0; i < names->nbFields; ++i) {
        auto it = expected.find(names->fields[i].name);
        check(it != expected.end() && it->second == names->fields[i].type,
              std::string("UpFirDn2d field ") + names->fields[i].name + " has the documented type");
    }

    // StyleGAN2's configurations: name, up, down, pad0, pad1, kernel gain, input HxW, expected HxW.
    struct Case {
        char const* what;
        int32_t up, down, pad0, pad1;
        float gain;
        int64_t in, out;
    };
    Case const cases[] = {
        {"ToRGB skip upsample (up=2, pad 2,1)", 2, 1, 2, 1, 4.0f, 16, 32},
        {"blur after transposed conv (pad 1,1)", 1, 1, 1, 1, 4.0f, 33, 32},
        {"blur before stride-2 3x3 conv (pad 2,2)", 1, 1, 2, 2, 1.0f, 16, 17},
        {"blur before stride-2 1x1 conv (pad 1,1)", 1, 1, 1, 1, 1.0f, 16, 15},
        {"Downsample (down=2, pad 1,1)", 1, 2, 1, 1, 1.0f, 16, 8},
    };
    for (Case const& c : cases) {
        Fields f;
        f.i32("up", {c.up}).i32("down", {c.down}).i32("pad0", {c.pad0}).i32("pad1", {c.pad1}).f32("kernel", blur4(c.gain));
        PluginPtr plugin(creator->createPlugin("upfirdn", f.get(), TensorRTPhase::kBUILD));
        check(plugin.p != nullptr, std::string("create ") + c.what);
        check(plugin.core() && plugin.build() && plugin.runtime(), "  has core, build and runtime capabilities");
        check(std::strcmp(plugin.core()->getPluginName(), "UpFirDn2d") == 0 &&
                  std::strcmp(plugin.core()->getPluginNamespace(), "cptr") == 0 &&
                  std::strcmp(plugin.core()->getPluginVersion(), "1") == 0,
              "  name/namespace/version");
        std::vector<int64_t> const out = outShape(plugin.build(), {{2, 3, c.in, c.in}});
        check(out == std::vector<int64_t>({2, 3, c.out, c.out}),
              "  output shape of [2, 3, " + std::to_string(c.in) + ", " + std::to_string(c.in) + "] is " + str(out));
        DataType outType{};
        DataType const inType = DataType::kHALF;
        check(plugin.build()->getOutputDataTypes(&outType, 1, &inType, 1) == 0 && outType == DataType::kHALF,
              "  output type follows input type");

        DynamicPluginTensorDesc io[2] = {dynDesc({-1, 3, c.in, c.in}, DataType::kFLOAT),
                                         dynDesc({-1, 3, c.out, c.out}, DataType::kFLOAT)};
        check(plugin.build()->supportsFormatCombination(0, io, 1, 1), "  kFLOAT linear input supported");
        check(plugin.build()->supportsFormatCombination(1, io, 1, 1), "  kFLOAT linear output supported");
        io[1].desc.type = DataType::kHALF;
        check(!plugin.build()->supportsFormatCombination(1, io, 1, 1), "  kHALF output for kFLOAT input rejected");
        io[0].desc.type = DataType::kHALF;
        check(plugin.build()->supportsFormatCombination(0, io, 1, 1) &&
                  plugin.build()->supportsFormatCombination(1, io, 1, 1),
              "  kHALF linear supported");
        io[0].desc.type = DataType::kINT8;
        check(!plugin.build()->supportsFormatCombination(0, io, 1, 1), "  kINT8 rejected");
        io[0].desc.type = DataType::kHALF;
        io[0].desc.format = TensorFormat::kCHW32;
        check(!plugin.build()->supportsFormatCombination(0, io, 1, 1), "  non-linear format rejected");

        io[0] = dynDesc({-1, 3, c.in, c.in}, DataType::kFLOAT);
        io[0].min = makeDims({1, 3, c.in, c.in});
        check(plugin.build()->configurePlugin(io, 1, io + 1, 1) == 0, "  configurePlugin accepts a dynamic batch");
        PluginTensorDesc rin = desc({4, 3, c.in, c.in}, DataType::kFLOAT);
        PluginTensorDesc rout = desc({4, 3, c.out, c.out}, DataType::kFLOAT);
        check(plugin.runtime()->onShapeChange(&rin, 1, &rout, 1) == 0, "  onShapeChange accepts matching shapes");
        rout.dims.d[2] += 1;
        check(plugin.runtime()->onShapeChange(&rin, 1, &rout, 1) != 0, "  onShapeChange rejects a wrong output shape");

        // serialize -> re-create (what deserialization does) -> same configuration
        PluginFieldCollection const* ser = plugin.runtime()->getFieldsToSerialize();
        PluginPtr again(creator->createPlugin("upfirdn", ser, TensorRTPhase::kRUNTIME));
        check(again.p != nullptr, "  re-created from its serialized fields");
        check(std::strcmp(again.build()->getMetadataString(), plugin.build()->getMetadataString()) == 0,
              std::string("  same configuration: ") + again.build()->getMetadataString());
        check(outShape(again.build(), {{2, 3, c.in, c.in}}) == out, "  same output shape");
        PluginPtr cloned(plugin.p->clone());
        check(cloned.p != nullptr && std::strcmp(cloned.build()->getMetadataString(), plugin.build()->getMetadataString()) == 0,
              "  clone keeps the configuration");
        PluginPtr attached(plugin.runtime()->attachToContext(nullptr));
        check(attached.p != nullptr, "  attachToContext returns a plugin");
    }

    // An input too small for the configuration is rejected at configure time.
    {
        Fields f;
        f.i32("down", {2}).i32("pad0", {-3}).i32("pad1", {-3}).f32("kernel", blur4(1.0f));
        PluginPtr plugin(creator->createPlugin("small", f.get(), TensorRTPhase::kBUILD));
        check(plugin.p != nullptr, "create down=2 pad=(-3,-3)");
        DynamicPluginTensorDesc io[2] = {dynDesc({1, 1, 4, 4}, DataType::kFLOAT), dynDesc({1, 1, 1, 1}, DataType::kFLOAT)};
        check(plugin.build()->configurePlugin(io, 1, io + 1, 1) != 0, "  configurePlugin rejects a 4x4 input (empty output)");
        // Wrong input/output counts (kNbInputs = 1).
        check(!plugin.build()->supportsFormatCombination(0, io, 2, 0), "  supportsFormatCombination rejects 2 inputs");
        check(outShape(plugin.build(), {{1, 1, 8, 8}, {1}}).empty(), "  getOutputShapes rejects 2 inputs");
    }
    // Non-square kernel with explicit kh/kw.
    {
        Fields f;
        f.i32("kh", {1}).i32("kw", {3}).f32("kernel", {1.0f, 2.0f, 1.0f}).i32("pad0", {1}).i32("pad1", {1});
        PluginPtr plugin(creator->createPlugin("row", f.get(), TensorRTPhase::kBUILD));
        check(plugin.p != nullptr, "create a 1x3 kernel with kh/kw");
        check(outShape(plugin.build(), {{1, 2, 5, 7}}) == std::vector<int64_t>({1, 2, 7, 7}),
              "  output shape [1, 2, 7, 7] for input [1, 2, 5, 7]");
    }
    // Invalid field sets must fail cleanly (nullptr + a logged reason).
    struct Bad {
        char const* what;
        Fields f;
    };
    std::vector<Bad> bad(5);
    bad[0].what = "missing kernel";
    bad[0].f.i32("up", {2});
    bad[1].what = "up=0";
    bad[1].f.i32("up", {0}).f32("kernel", blur4(1.0f));
    bad[2].what = "5 taps without kh/kw";
    bad[2].f.f32("kernel", {1, 1, 1, 1, 1});
    bad[3].what = "kh*kw != taps";
    bad[3].f.i32("kh", {2}).i32("kw", {2}).f32("kernel", blur4(1.0f));
    bad[4].what = "17x17 kernel";
    bad[4].f.f32("kernel", std::vector<float>(17 * 17, 1.0f));
    for (Bad& b : bad) {
        IPluginV3* p = creator->createPlugin("bad", b.f.get(), TensorRTPhase::kBUILD);
        check(p == nullptr, std::string("rejects ") + b.what);
        delete p;
    }
}

void testBiasLeakyReLU(IPluginCreatorV3One* creator) {
    PluginFieldCollection const* names = creator->getFieldNames();
    check(names->nbFields == 2 && std::strcmp(names->fields[0].name, "negative_slope") == 0 &&
              std::strcmp(names->fields[1].name, "scale") == 0 && names->fields[0].type == PluginFieldType::kFLOAT32,
          "FusedBiasLeakyReLU lists negative_slope, scale (FLOAT32)");

    Fields f;
    f.f32("negative_slope", {0.1f}).f32("scale", {2.0f});
    PluginPtr plugin(creator->createPlugin("act", f.get(), TensorRTPhase::kBUILD));
    check(plugin.p != nullptr, "create FusedBiasLeakyReLU(0.1, 2)");
    check(std::strcmp(plugin.core()->getPluginName(), "FusedBiasLeakyReLU") == 0 &&
              std::strcmp(plugin.core()->getPluginNamespace(), "cptr") == 0,
          "  name/namespace");
    check(outShape(plugin.build(), {{2, 8, 5, 5}, {8}}) == std::vector<int64_t>({2, 8, 5, 5}), "  4-D output shape = input");
    check(outShape(plugin.build(), {{2, 8}, {8}}) == std::vector<int64_t>({2, 8}), "  2-D output shape = input");
    check(outShape(plugin.build(), {{2, 8, 5, 5}}).empty(), "  missing bias input rejected");

    DynamicPluginTensorDesc io[3] = {dynDesc({-1, 8, 5, 5}, DataType::kHALF), dynDesc({8}, DataType::kFLOAT),
                                     dynDesc({-1, 8, 5, 5}, DataType::kHALF)};
    check(plugin.build()->supportsFormatCombination(0, io, 2, 1), "  kHALF x supported");
    check(plugin.build()->supportsFormatCombination(1, io, 2, 1), "  kFLOAT bias with kHALF x supported");
    check(plugin.build()->supportsFormatCombination(2, io, 2, 1), "  kHALF output supported");
    io[2].desc.type = DataType::kFLOAT;
    check(!plugin.build()->supportsFormatCombination(2, io, 2, 1), "  output type must equal x type");
    io[0].desc.type = DataType::kFLOAT;
    io[1].desc.type = DataType::kHALF;
    check(!plugin.build()->supportsFormatCombination(1, io, 2, 1), "  kHALF bias with kFLOAT x rejected");
    io[1] = dynDesc({7}, DataType::kFLOAT);
    check(plugin.build()->configurePlugin(io, 2, io + 2, 1) != 0, "  bias [7] for 8 channels rejected");
    io[1] = dynDesc({8}, DataType::kFLOAT);
    check(plugin.build()->configurePlugin(io, 2, io + 2, 1) == 0, "  bias [8] for 8 channels accepted");

    PluginTensorDesc rin[2] = {desc({3, 8, 5, 5}, DataType::kFLOAT), desc({8}, DataType::kFLOAT)};
    PluginTensorDesc rout = desc({3, 8, 5, 5}, DataType::kFLOAT);
    check(plugin.runtime()->onShapeChange(rin, 2, &rout, 1) == 0, "  onShapeChange accepts matching shapes");
    // Wrong input/output counts: every entry point refuses them (the checks read kNbInputs = 2).
    check(plugin.runtime()->onShapeChange(rin, 1, &rout, 1) != 0, "  onShapeChange rejects 1 input");
    check(!plugin.build()->supportsFormatCombination(0, io, 1, 2), "  supportsFormatCombination rejects 1 input, 2 outputs");
    DataType outType{};
    DataType const inTypes[2] = {DataType::kFLOAT, DataType::kFLOAT};
    check(plugin.build()->getOutputDataTypes(&outType, 1, inTypes, 1) != 0, "  getOutputDataTypes rejects 1 input");
    check(plugin.build()->getOutputDataTypes(&outType, 1, inTypes, 2) == 0 && outType == DataType::kFLOAT,
          "  getOutputDataTypes accepts 2 inputs");

    PluginFieldCollection const* ser = plugin.runtime()->getFieldsToSerialize();
    float slope = -1, scale = -1;
    for (int32_t i = 0; i < ser->nbFields; ++i) {
        if (std::strcmp(ser->fields[i].name, "negative_slope") == 0) slope = *static_cast<float const*>(ser->fields[i].data);
        if (std::strcmp(ser->fields[i].name, "scale") == 0) scale = *static_cast<float const*>(ser->fields[i].data);
    }
    check(slope == 0.1f && scale == 2.0f, "  serializes negative_slope=0.1 scale=2");
    PluginPtr again(creator->createPlugin("act", ser, TensorRTPhase::kRUNTIME));
    check(again.p != nullptr && std::strcmp(again.build()->getMetadataString(), plugin.build()->getMetadataString()) == 0,
          std::string("  re-created: ") + again.build()->getMetadataString());

    PluginFieldCollection empty{0, nullptr};
    PluginPtr defaults(creator->createPlugin("act", &empty, TensorRTPhase::kBUILD));
    check(defaults.p != nullptr, std::string("  defaults: ") + defaults.build()->getMetadataString());

    Fields wrong;
    wrong.i32("negative_slope", {1, 2});
    IPluginV3* bad = creator->createPlugin("bad", wrong.get(), TensorRTPhase::kBUILD);
    check(bad == nullptr, "  rejects a 2-element negative_slope");
    delete bad;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: plugin_smoke path/to/libcptr_trt_plugins_dynamic.so\n");
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
        std::printf("FAIL dlopen: %s\n", dlerror());
        return 1;
    }
    using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
    check(getCreators != nullptr, "library exports getCreators");
    check(dlsym(lib, "setLoggerFinder") != nullptr, "library exports setLoggerFinder");
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    check(n == 2 && creators != nullptr, "getCreators returns 2 creators");
    IPluginCreatorV3One* upfirdn = nullptr;
    IPluginCreatorV3One* act = nullptr;
    for (int32_t i = 0; i < n; ++i) {
        InterfaceInfo const info = creators[i]->getInterfaceInfo();
        check(std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") == 0, "creator is an IPluginCreatorV3One");
        auto* c = static_cast<IPluginCreatorV3One*>(creators[i]);
        check(std::strcmp(c->getPluginNamespace(), "cptr") == 0 && std::strcmp(c->getPluginVersion(), "1") == 0,
              std::string("creator ") + c->getPluginName() + " is cptr::" + c->getPluginName() + " v1");
        if (std::strcmp(c->getPluginName(), "UpFirDn2d") == 0) upfirdn = c;
        if (std::strcmp(c->getPluginName(), "FusedBiasLeakyReLU") == 0) act = c;
    }
    check(upfirdn != nullptr && act != nullptr, "both UpFirDn2d and FusedBiasLeakyReLU are provided");
    testUpFirDn2d(upfirdn);
    testBiasLeakyReLU(act);
    std::printf("ALL OK (%d checks)\n", gChecks);
    return 0;
}
