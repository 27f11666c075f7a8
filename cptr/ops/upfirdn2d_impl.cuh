// upfirdn2d building blocks: per-sample and per-tile computations used by the device kernels in
// upfirdn2d.cu and, unchanged, by the host emulation that checks them without a GPU.
//
// Index convention (rosinality semantics). With u the zero-inserted signal (u[v] = x[v / up] when
// v % up == 0, else 0; v in [0, in * up)) and kf the flipped kernel (kf[k] = kernel[K - 1 - k]):
//   out[o] = sum_k u[o * down - pad0 + k] * kf[k],  k in [0, K)
// Only k with (o * down - pad0 + k) % up == 0 touch a real sample (polyphase), so the loops below
// start at k0 = (-(o * down - pad0)) mod up and step by up.
#pragma once

#include <cstdlib>

#include "cptr_kernels.h"
#include "kernel_common.cuh"

namespace cptr {
namespace detail {

struct UpFirDnShape {
    int64_t planes;
    int in_h, in_w, out_h, out_w;
    int up_x, up_y, down_x, down_y;
    int pad_x0, pad_y0;
    int kh, kw;
};

// Output length of one axis: floor((in * up + pad0 + pad1 - k) / down) + 1 (< 1: no output).
inline int64_t out_size_1d(int64_t in, int up, int down, int pad0, int pad1, int k) {
    if (down < 1) return 0;
    const int64_t span = in * up + pad0 + pad1 - k;
    const int64_t q = span >= 0 ? span / down : -((-span + down - 1) / down);
    return q + 1;
}

// Validates a configuration and fills `s`; false when it is invalid (the launcher then returns
// cudaErrorInvalidValue). Per-plane index arithmetic is 32-bit, plane offsets are 64-bit.
inline bool make_shape(int64_t planes, int in_h, int in_w, int kh, int kw, const UpFirDn2dParams& p,
                       UpFirDnShape* s) {
    if (planes < 0 || in_h < 1 || in_w < 1) return false;
    if (kh < 1 || kw < 1 || kh > kMaxFirSide || kw > kMaxFirSide) return false;
    if (p.up_x < 1 || p.up_y < 1 || p.down_x < 1 || p.down_y < 1) return false;
    constexpr int64_t kIntMax = 0x7fffffff;
    const int64_t span_y = static_cast<int64_t>(in_h) * p.up_y + std::llabs(p.pad_y0) + std::llabs(p.pad_y1) + kh;
    const int64_t span_x = static_cast<int64_t>(in_w) * p.up_x + std::llabs(p.pad_x0) + std::llabs(p.pad_x1) + kw;
    if (span_y > kIntMax / 4 || span_x > kIntMax / 4) return false;
    const int64_t out_h = out_size_1d(in_h, p.up_y, p.down_y, p.pad_y0, p.pad_y1, kh);
    const int64_t out_w = out_size_1d(in_w, p.up_x, p.down_x, p.pad_x0, p.pad_x1, kw);
    if (out_h < 1 || out_w < 1) return false;
    if (out_h * out_w > kIntMax || static_cast<int64_t>(in_h) * in_w > kIntMax) return false;
    s->planes = planes;
    s->in_h = in_h;
    s->in_w = in_w;
    s->out_h = static_cast<int>(out_h);
    s->out_w = static_cast<int>(out_w);
    s->up_x = p.up_x;
    s->up_y = p.up_y;
    s->down_x = p.down_x;
    s->down_y = p.down_y;
    s->pad_x0 = p.pad_x0;
    s->pad_y0 = p.pad_y0;
    s->kh = kh;
    s->kw = kw;
    return true;
}

// Flipped tap i (row-major over [kh, kw]) of a row-major kernel.
CPTR_HD int flipped_tap_index(int i, int kh, int kw) {
    const int ky = i / kw;
    const int kx = i - ky * kw;
    return (kh - 1 - ky) * kw + (kw - 1 - kx);
}

// General path: one output sample from a whole input plane; kf holds the flipped taps.
template <typename T, typename Acc>
CPTR_HD Acc upfirdn_sample(const T* plane, const Acc* kf, const UpFirDnShape& s, int oy, int ox) {
    const int by = oy * s.down_y - s.pad_y0;
    const int bx = ox * s.down_x - s.pad_x0;
    const int ky0 = floor_mod(-by, s.up_y);
    const int kx0 = floor_mod(-bx, s.up_x);
    Acc acc = Acc(0);
    for (int ky = ky0; ky < s.kh; ky += s.up_y) {
        const int iy = floor_div(by + ky, s.up_y);
        if (iy < 0 || iy >= s.in_h) continue;
        const T* row = plane + static_cast<int64_t>(iy) * s.in_w;
        const Acc* krow = kf + ky * s.kw;
        for (int kx = kx0; kx < s.kw; kx += s.up_x) {
            const int ix = floor_div(bx + kx, s.up_x);
            if (ix < 0 || ix >= s.in_w) continue;
            acc += to_acc<Acc>(row[ix]) * krow[kx];
        }
    }
    return acc;
}

// Tiled path: a block computes a kTileH x kTileW output tile of one plane from a patch of the input
// staged in shared memory. Geometry for compile-time UP, DOWN and a square K x K kernel.
constexpr int kTileH = 32;
constexpr int kTileW = 32;
constexpr int kTileThreadsX = 32;  // == kTileW: one output column per thread
constexpr int kTileThreadsY = 8;   // each thread computes kTileH / kTileThreadsY rows

template <int UP, int DOWN, int K>
struct TileGeometry {
    // Input rows touched by kTileH consecutive output rows, plus one for floor rounding of the
    // first row: floor((start + span) / UP) - floor(start / UP) <= floor(span / UP) + 1.
    static constexpr int kPatchH = ((kTileH - 1) * DOWN + K - 1) / UP + 2;
    static constexpr int kPatchW = ((kTileW - 1) * DOWN + K - 1) / UP + 2;
    static constexpr int kPatchSize = kPatchH * kPatchW;
};

// First input row / column of the patch of the tile whose first output is (oy0, ox0).
template <int UP, int DOWN>
CPTR_HD int tile_origin(int o0, int pad0) { return floor_div(o0 * DOWN - pad0, UP); }

// Cooperative load of the input patch (zeros outside the plane); thread `tid` of `nthreads`.
template <typename T, typename Acc, int UP, int DOWN, int K>
CPTR_HD void tile_load(const T* plane, Acc* patch, const UpFirDnShape& s, int oy0, int ox0, int tid,
                       int nthreads) {
    using G = TileGeometry<UP, DOWN, K>;
    const int iy0 = tile_origin<UP, DOWN>(oy0, s.pad_y0);
    const int ix0 = tile_origin<UP, DOWN>(ox0, s.pad_x0);
    for (int i = tid; i < G::kPatchSize; i += nthreads) {
        const int r = i / G::kPatchW;
        const int c = i - r * G::kPatchW;
        const int iy = iy0 + r;
        const int ix = ix0 + c;
        const bool inside = iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w;
        patch[i] = inside ? to_acc<Acc>(plane[static_cast<int64_t>(iy) * s.in_w + ix]) : Acc(0);
    }
}

// One output sample (oy, ox) of the tile starting at (oy0, ox0), read from the staged patch.
// kf holds the K x K flipped taps.
template <typename Acc, int UP, int DOWN, int K>
CPTR_HD Acc tile_sample(const Acc* patch, const Acc* kf, const UpFirDnShape& s, int oy0, int ox0, int oy,
                        int ox) {
    using G = TileGeometry<UP, DOWN, K>;
    const int iy0 = tile_origin<UP, DOWN>(oy0, s.pad_y0);
    const int ix0 = tile_origin<UP, DOWN>(ox0, s.pad_x0);
    const int by = oy * DOWN - s.pad_y0;
    const int bx = ox * DOWN - s.pad_x0;
    const int ky0 = floor_mod(-by, UP);
    const int kx0 = floor_mod(-bx, UP);
    Acc acc = Acc(0);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int j = 0; j < (K + UP - 1) / UP; ++j) {
        const int ky = ky0 + j * UP;
        if (ky >= K) break;
        const int r = floor_div(by + ky, UP) - iy0;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
        for (int i = 0; i < (K + UP - 1) / UP; ++i) {
            const int kx = kx0 + i * UP;
            if (kx >= K) break;
            const int c = floor_div(bx + kx, UP) - ix0;
            acc += patch[r * G::kPatchW + c] * kf[ky * K + kx];
        }
    }
    return acc;
}

// Which kernel runs a given configuration: the tiled kernels cover 4x4 FIR kernels with the same
// (up, down) in {(1, 1), (2, 1), (1, 2)} on both axes; everything else takes the general kernel.
enum class UpFirDnPath { kGeneral, kTiledUp1Down1, kTiledUp2Down1, kTiledUp1Down2 };

inline UpFirDnPath select_path(const UpFirDnShape& s) {
    const bool square4 = s.kh == 4 && s.kw == 4;
    const bool same_axes = s.up_x == s.up_y && s.down_x == s.down_y;
    const bool tiles_fit = (s.out_h + kTileH - 1) / kTileH <= 65535;  // gridDim.y limit
    if (!(square4 && same_axes && tiles_fit)) return UpFirDnPath::kGeneral;
    if (s.up_x == 1 && s.down_x == 1) return UpFirDnPath::kTiledUp1Down1;
    if (s.up_x == 2 && s.down_x == 1) return UpFirDnPath::kTiledUp2Down1;
    if (s.up_x == 1 && s.down_x == 2) return UpFirDnPath::kTiledUp1Down2;
    return UpFirDnPath::kGeneral;
}

}  // namespace detail
}  // namespace cptr
