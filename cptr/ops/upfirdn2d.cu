// upfirdn2d CUDA kernels: a general kernel (any up/down/pad, kernels up to 16x16) and shared-memory
// tiled kernels for the 4x4 FIR configurations StyleGAN2 uses (see upfirdn2d_impl.cuh for the math).
#include <algorithm>

#include "cptr_kernels.h"
#include "upfirdn2d_impl.cuh"

namespace cptr {
namespace {

using detail::UpFirDnShape;

// FIR taps passed by value (host taps) or by pointer (device taps).
struct TapsArg {
    const float* device;
    float host[kMaxFirTaps];
};

__device__ __forceinline__ float read_tap(const TapsArg& taps, int i) {
    return taps.device != nullptr ? taps.device[i] : taps.host[i];
}

constexpr int kGeneralThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kGeneralThreads)
    upfirdn2d_general_kernel(const T* __restrict__ x, T* __restrict__ y, UpFirDnShape s, TapsArg taps) {
    using Acc = typename detail::AccType<T>::type;
    __shared__ Acc kf[kMaxFirTaps];
    const int ntaps = s.kh * s.kw;
    for (int i = threadIdx.x; i < ntaps; i += blockDim.x) {
        kf[i] = static_cast<Acc>(read_tap(taps, detail::flipped_tap_index(i, s.kh, s.kw)));
    }
    __syncthreads();

    const int64_t plane_out = static_cast<int64_t>(s.out_h) * s.out_w;
    const int64_t plane_in = static_cast<int64_t>(s.in_h) * s.in_w;
    const int64_t total = s.planes * plane_out;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t p = i / plane_out;
        const int rem = static_cast<int>(i - p * plane_out);
        const int oy = rem / s.out_w;
        const int ox = rem - oy * s.out_w;
        y[i] = detail::from_acc<T>(detail::upfirdn_sample<T, Acc>(x + p * plane_in, kf, s, oy, ox));
    }
}

template <typename T, int UP, int DOWN, int K>
__global__ void __launch_bounds__(detail::kTileThreadsX * detail::kTileThreadsY)
    upfirdn2d_tiled_kernel(const T* __restrict__ x, T* __restrict__ y, UpFirDnShape s, TapsArg taps) {
    using Acc = typename detail::AccType<T>::type;
    using G = detail::TileGeometry<UP, DOWN, K>;
    __shared__ Acc patch[G::kPatchSize];
    __shared__ Acc kf[K * K];

    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
    const int nthreads = blockDim.x * blockDim.y;
    if (tid < K * K) kf[tid] = static_cast<Acc>(read_tap(taps, detail::flipped_tap_index(tid, K, K)));

    const int oy0 = blockIdx.y * detail::kTileH;
    const int ox0 = blockIdx.x * detail::kTileW;
    const int ox = ox0 + threadIdx.x;
    const int64_t plane_in = static_cast<int64_t>(s.in_h) * s.in_w;
    const int64_t plane_out = static_cast<int64_t>(s.out_h) * s.out_w;

    for (int64_t p = blockIdx.z; p < s.planes; p += gridDim.z) {
        __syncthreads();  // the previous plane's patch (and, first time, kf) is no longer read
        detail::tile_load<T, Acc, UP, DOWN, K>(x + p * plane_in, patch, s, oy0, ox0, tid, nthreads);
        __syncthreads();
        if (ox < s.out_w) {
            T* out = y + p * plane_out;
            for (int r = threadIdx.y; r < detail::kTileH; r += blockDim.y) {
                const int oy = oy0 + r;
                if (oy >= s.out_h) break;
                const Acc v = detail::tile_sample<Acc, UP, DOWN, K>(patch, kf, s, oy0, ox0, oy, ox);
                out[static_cast<int64_t>(oy) * s.out_w + ox] = detail::from_acc<T>(v);
            }
        }
    }
}

template <typename T, int UP, int DOWN, int K>
cudaError_t launch_tiled(const T* x, T* y, const UpFirDnShape& s, const TapsArg& taps, cudaStream_t stream) {
    const dim3 block(detail::kTileThreadsX, detail::kTileThreadsY);
    const dim3 grid((s.out_w + detail::kTileW - 1) / detail::kTileW, (s.out_h + detail::kTileH - 1) / detail::kTileH,
                    static_cast<unsigned>(std::min<int64_t>(s.planes, 65535)));
    upfirdn2d_tiled_kernel<T, UP, DOWN, K><<<grid, block, 0, stream>>>(x, y, s, taps);
    return cudaGetLastError();
}

template <typename T>
cudaError_t launch_typed(const void* xv, void* yv, const UpFirDnShape& s, const TapsArg& taps, cudaStream_t stream) {
    const T* x = static_cast<const T*>(xv);
    T* y = static_cast<T*>(yv);
    switch (detail::select_path(s)) {
        case detail::UpFirDnPath::kTiledUp1Down1: return launch_tiled<T, 1, 1, 4>(x, y, s, taps, stream);
        case detail::UpFirDnPath::kTiledUp2Down1: return launch_tiled<T, 2, 1, 4>(x, y, s, taps, stream);
        case detail::UpFirDnPath::kTiledUp1Down2: return launch_tiled<T, 1, 2, 4>(x, y, s, taps, stream);
        case detail::UpFirDnPath::kGeneral: break;
    }
    const int64_t total = s.planes * s.out_h * s.out_w;
    const int64_t blocks = std::min<int64_t>((total + kGeneralThreads - 1) / kGeneralThreads, int64_t{1} << 20);
    upfirdn2d_general_kernel<T><<<static_cast<unsigned>(blocks), kGeneralThreads, 0, stream>>>(x, y, s, taps);
    return cudaGetLastError();
}

}  // namespace

int64_t upfirdn2d_out_size(int64_t in, int up, int down, int pad0, int pad1, int k) {
    return detail::out_size_1d(in, up, down, pad0, pad1, k);
}

cudaError_t upfirdn2d(const void* x, void* y, DType dtype, int64_t planes, int in_h, int in_w, const float* taps,
                      bool taps_on_device, int kh, int kw, const UpFirDn2dParams& p, cudaStream_t stream) {
    UpFirDnShape s{};
    if (!detail::make_shape(planes, in_h, in_w, kh, kw, p, &s)) return cudaErrorInvalidValue;
    if (planes == 0) return cudaSuccess;  // empty tensors may carry null pointers
    if (x == nullptr || y == nullptr || taps == nullptr) return cudaErrorInvalidValue;

    TapsArg t{};
    if (taps_on_device) {
        t.device = taps;
    } else {
        t.device = nullptr;
        std::copy(taps, taps + kh * kw, t.host);
    }

    switch (dtype) {
        case DType::kFloat32: return launch_typed<float>(x, y, s, t, stream);
        case DType::kFloat16: return launch_typed<__half>(x, y, s, t, stream);
        case DType::kFloat64: return launch_typed<double>(x, y, s, t, stream);
    }
    return cudaErrorInvalidValue;
}

const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::kFloat32: return "float32";
        case DType::kFloat16: return "float16";
        case DType::kFloat64: return "float64";
    }
    return "unknown";
}

}  // namespace cptr
