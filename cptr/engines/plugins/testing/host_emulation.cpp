// Host emulation of the CPTR CUDA kernels, for checking their arithmetic on a machine without a GPU.
//
// It runs the same __host__ __device__ building blocks as the device kernels (upfirdn2d_impl.cuh,
// bias_act_impl.cuh), with the same path selection, tile geometry and block/thread loop structure,
// executed serially. What it cannot check: races, launch configuration limits and the device compiler.
// Build (plain host compiler, CUDA headers only for cuda_fp16.h / cuda_runtime_api.h):
//   g++ -std=c++17 -O2 -I<cuda>/include -I../../../ops host_emulation.cpp -o host_emulation
// Usage:
//   host_emulation upfirdn2d DTYPE PLANES IN_H IN_W KH KW UPX UPY DOWNX DOWNY PX0 PX1 PY0 PY1 TAPS X Y
//   host_emulation bias_act DTYPE BIAS_DTYPE|none N C S SLOPE GAIN X BIAS|- REF|- Y
// DTYPE is float32, float16 or float64; files are raw little-endian arrays. upfirdn2d prints
// "path=<kernel> out_h=<h> out_w=<w>"; an invalid configuration prints "invalid" and exits with 3.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "bias_act_impl.cuh"
#include "upfirdn2d_impl.cuh"

namespace {

using cptr::detail::UpFirDnPath;
using cptr::detail::UpFirDnShape;

std::vector<char> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        std::exit(2);
    }
    return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const void* data, size_t bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    if (!f) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        std::exit(2);
    }
}

template <typename T>
std::vector<T> read_array(const std::string& path, size_t count) {
    const std::vector<char> raw = read_file(path);
    if (raw.size() != count * sizeof(T)) {
        std::fprintf(stderr, "%s: expected %zu bytes, got %zu\n", path.c_str(), count * sizeof(T), raw.size());
        std::exit(2);
    }
    std::vector<T> out(count);
    std::memcpy(out.data(), raw.data(), raw.size());
    return out;
}

const char* path_name(UpFirDnPath p) {
    switch (p) {
        case UpFirDnPath::kGeneral: return "general";
        case UpFirDnPath::kTiledUp1Down1: return "tiled_up1_down1";
        case UpFirDnPath::kTiledUp2Down1: return "tiled_up2_down1";
        case UpFirDnPath::kTiledUp1Down2: return "tiled_up1_down2";
    }
    return "?";
}

// Mirrors upfirdn2d_general_kernel: flat loop over all outputs.
template <typename T>
void run_general(const T* x, T* y, const UpFirDnShape& s, const float* taps) {
    using Acc = typename cptr::detail::AccType<T>::type;
    std::vector<Acc> kf(s.kh * s.kw);
    for (int i = 0; i < s.kh * s.kw; ++i) kf[i] = static_cast<Acc>(taps[cptr::detail::flipped_tap_index(i, s.kh, s.kw)]);
    const int64_t plane_out = static_cast<int64_t>(s.out_h) * s.out_w;
    const int64_t plane_in = static_cast<int64_t>(s.in_h) * s.in_w;
    for (int64_t i = 0; i < s.planes * plane_out; ++i) {
        const int64_t p = i / plane_out;
        const int rem = static_cast<int>(i - p * plane_out);
        const int oy = rem / s.out_w;
        const int ox = rem - oy * s.out_w;
        y[i] = cptr::detail::from_acc<T>(cptr::detail::upfirdn_sample<T, Acc>(x + p * plane_in, kf.data(), s, oy, ox));
    }
}

// Mirrors upfirdn2d_tiled_kernel: grid (tiles_x, tiles_y, planes), block (32, 8), each phase run for
// every thread before the next phase starts (the __syncthreads points).
template <typename T, int UP, int DOWN, int K>
void run_tiled(const T* x, T* y, const UpFirDnShape& s, const float* taps) {
    namespace d = cptr::detail;
    using Acc = typename d::AccType<T>::type;
    using G = d::TileGeometry<UP, DOWN, K>;
    std::vector<Acc> patch(G::kPatchSize);
    Acc kf[K * K];
    const int nthreads = d::kTileThreadsX * d::kTileThreadsY;
    for (int tid = 0; tid < K * K; ++tid) kf[tid] = static_cast<Acc>(taps[d::flipped_tap_index(tid, K, K)]);
    const int tiles_x = (s.out_w + d::kTileW - 1) / d::kTileW;
    const int tiles_y = (s.out_h + d::kTileH - 1) / d::kTileH;
    const int64_t plane_in = static_cast<int64_t>(s.in_h) * s.in_w;
    const int64_t plane_out = static_cast<int64_t>(s.out_h) * s.out_w;
    for (int64_t p = 0; p < s.planes; ++p) {
        for (int by = 0; by < tiles_y; ++by) {
            for (int bx = 0; bx < tiles_x; ++bx) {
                const int oy0 = by * d::kTileH;
                const int ox0 = bx * d::kTileW;
                // Poison the patch so a sample read that the load phase did not write shows up.
                for (auto& v : patch) v = Acc(1e30);
                for (int tid = 0; tid < nthreads; ++tid) {
                    d::tile_load<T, Acc, UP, DOWN, K>(x + p * plane_in, patch.data(), s, oy0, ox0, tid, nthreads);
                }
                for (int ty = 0; ty < d::kTileThreadsY; ++ty) {
                    for (int tx = 0; tx < d::kTileThreadsX; ++tx) {
                        const int ox = ox0 + tx;
                        if (ox >= s.out_w) continue;
                        for (int r = ty; r < d::kTileH; r += d::kTileThreadsY) {
                            const int oy = oy0 + r;
                            if (oy >= s.out_h) break;
                            const Acc v = d::tile_sample<Acc, UP, DOWN, K>(patch.data(), kf, s, oy0, ox0, oy, ox);
                            y[p * plane_out + static_cast<int64_t>(oy) * s.out_w + ox] = d::from_acc<T>(v);
                        }
                    }
                }
            }
        }
    }
}

template <typename T>
void run_upfirdn2d(const UpFirDnShape& s, const std::vector<float>& taps, const std::string& xpath,
                   const std::string& ypath) {
    const int64_t nin = s.planes * s.in_h * s.in_w;
    const int64_t nout = s.planes * s.out_h * s.out_w;
    const std::vector<T> x = read_array<T>(xpath, static_cast<size_t>(nin));
    std::vector<T> y(static_cast<size_t>(nout));
    switch (cptr::detail::select_path(s)) {
        case UpFirDnPath::kTiledUp1Down1: run_tiled<T, 1, 1, 4>(x.data(), y.data(), s, taps.data()); break;
        case UpFirDnPath::kTiledUp2Down1: run_tiled<T, 2, 1, 4>(x.data(), y.data(), s, taps.data()); break;
        case UpFirDnPath::kTiledUp1Down2: run_tiled<T, 1, 2, 4>(x.data(), y.data(), s, taps.data()); break;
        case UpFirDnPath::kGeneral: run_general<T>(x.data(), y.data(), s, taps.data()); break;
    }
    write_file(ypath, y.data(), y.size() * sizeof(T));
}

int cmd_upfirdn2d(int argc, char** argv) {
    if (argc != 19) {
        std::fprintf(stderr, "upfirdn2d: expected 17 arguments\n");
        return 2;
    }
    const std::string dtype = argv[2];
    const int64_t planes = std::atoll(argv[3]);
    const int in_h = std::atoi(argv[4]), in_w = std::atoi(argv[5]);
    const int kh = std::atoi(argv[6]), kw = std::atoi(argv[7]);
    cptr::UpFirDn2dParams prm;
    prm.up_x = std::atoi(argv[8]);
    prm.up_y = std::atoi(argv[9]);
    prm.down_x = std::atoi(argv[10]);
    prm.down_y = std::atoi(argv[11]);
    prm.pad_x0 = std::atoi(argv[12]);
    prm.pad_x1 = std::atoi(argv[13]);
    prm.pad_y0 = std::atoi(argv[14]);
    prm.pad_y1 = std::atoi(argv[15]);
    UpFirDnShape s{};
    if (!cptr::detail::make_shape(planes, in_h, in_w, kh, kw, prm, &s)) {
        std::printf("invalid\n");
        return 3;
    }
    const std::vector<float> taps = read_array<float>(argv[16], static_cast<size_t>(kh * kw));
    if (dtype == "float32") {
        run_upfirdn2d<float>(s, taps, argv[17], argv[18]);
    } else if (dtype == "float16") {
        run_upfirdn2d<__half>(s, taps, argv[17], argv[18]);
    } else if (dtype == "float64") {
        run_upfirdn2d<double>(s, taps, argv[17], argv[18]);
    } else {
        std::fprintf(stderr, "unknown dtype %s\n", dtype.c_str());
        return 2;
    }
    std::printf("path=%s out_h=%d out_w=%d\n", path_name(cptr::detail::select_path(s)), s.out_h, s.out_w);
    return 0;
}

// Mirrors bias_act_kernel (one loop over all elements).
template <typename T, typename B>
void run_bias_act(int64_t n, int64_t c, int64_t s, double slope_d, double gain_d, const std::string& xpath,
                  const std::string& bpath, const std::string& rpath, const std::string& ypath) {
    using Acc = typename cptr::detail::AccType<T>::type;
    const int64_t total = n * c * s;
    const std::vector<T> x = read_array<T>(xpath, static_cast<size_t>(total));
    const std::vector<B> bias = bpath == "-" ? std::vector<B>() : read_array<B>(bpath, static_cast<size_t>(c));
    const std::vector<T> ref = rpath == "-" ? std::vector<T>() : read_array<T>(rpath, static_cast<size_t>(total));
    std::vector<T> y(static_cast<size_t>(total));
    const Acc slope = static_cast<Acc>(slope_d), gain = static_cast<Acc>(gain_d);
    for (int64_t i = 0; i < total; ++i) {
        const Acc v = cptr::detail::to_acc<Acc>(x[i]);
        const Acc b = bias.empty() ? Acc(0) : cptr::detail::to_acc<Acc>(bias[cptr::detail::channel_of<int64_t>(i, c, s)]);
        const Acc out = ref.empty() ? cptr::detail::bias_leaky_relu_value<Acc>(v, b, slope, gain)
                                    : cptr::detail::bias_leaky_relu_grad_value<Acc>(
                                          v, b, cptr::detail::to_acc<Acc>(ref[i]), slope, gain);
        y[i] = cptr::detail::from_acc<T>(out);
    }
    write_file(ypath, y.data(), y.size() * sizeof(T));
}

int cmd_bias_act(int argc, char** argv) {
    if (argc != 13) {
        std::fprintf(stderr, "bias_act: expected 11 arguments\n");
        return 2;
    }
    const std::string dtype = argv[2], bdtype = argv[3];
    const int64_t n = std::atoll(argv[4]), c = std::atoll(argv[5]), s = std::atoll(argv[6]);
    const double slope = std::atof(argv[7]), gain = std::atof(argv[8]);
    const std::string bias = bdtype == "none" ? "-" : argv[10];
    if (dtype == "float32") {
        run_bias_act<float, float>(n, c, s, slope, gain, argv[9], bias, argv[11], argv[12]);
    } else if (dtype == "float64") {
        run_bias_act<double, double>(n, c, s, slope, gain, argv[9], bias, argv[11], argv[12]);
    } else if (dtype == "float16" && bdtype == "float32") {
        run_bias_act<__half, float>(n, c, s, slope, gain, argv[9], bias, argv[11], argv[12]);
    } else if (dtype == "float16") {
        run_bias_act<__half, __half>(n, c, s, slope, gain, argv[9], bias, argv[11], argv[12]);
    } else {
        std::fprintf(stderr, "unknown dtype %s\n", dtype.c_str());
        return 2;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 2 && std::strcmp(argv[1], "upfirdn2d") == 0) return cmd_upfirdn2d(argc, argv);
    if (argc >= 2 && std::strcmp(argv[1], "bias_act") == 0) return cmd_bias_act(argc, argv);
    std::fprintf(stderr, "usage: host_emulation upfirdn2d|bias_act ...\n");
    return 2;
}
