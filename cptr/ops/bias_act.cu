// Fused bias + leaky ReLU + gain CUDA kernels (forward and gradient), elementwise on [n, c, s].
#include <algorithm>

#include "bias_act_impl.cuh"
#include "cptr_kernels.h"

namespace cptr {
namespace {

constexpr int kThreads = 256;

// REF == false: y = act(x + bias).  REF == true: y = grad_value(x + bias, ref).
template <typename T, typename B, typename Index, bool REF>
__global__ void __launch_bounds__(kThreads)
    bias_act_kernel(const T* __restrict__ x, const B* __restrict__ bias, const T* __restrict__ ref,
                    T* __restrict__ y, Index total, Index c, Index s, typename detail::AccType<T>::type slope,
                    typename detail::AccType<T>::type gain) {
    using Acc = typename detail::AccType<T>::type;
    const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
    for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const Acc v = detail::to_acc<Acc>(x[i]);
        const Acc b = bias != nullptr ? detail::to_acc<Acc>(bias[detail::channel_of<Index>(i, c, s)]) : Acc(0);
        Acc out;
        if constexpr (REF) {
            out = detail::bias_leaky_relu_grad_value<Acc>(v, b, detail::to_acc<Acc>(ref[i]), slope, gain);
        } else {
            out = detail::bias_leaky_relu_value<Acc>(v, b, slope, gain);
        }
        y[i] = detail::from_acc<T>(out);
    }
}

template <typename T, typename B, bool REF>
cudaError_t launch(const void* x, const void* bias, const void* ref, void* y, int64_t n, int64_t c, int64_t s,
                   double slope_d, double gain_d, cudaStream_t stream) {
    using Acc = typename detail::AccType<T>::type;
    const Acc slope = static_cast<Acc>(slope_d);
    const Acc gain = static_cast<Acc>(gain_d);
    const int64_t total = n * c * s;
    if (total == 0) return cudaSuccess;
    const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t{1} << 20);
    const T* xt = static_cast<const T*>(x);
    const B* bt = static_cast<const B*>(bias);
    const T* rt = static_cast<const T*>(ref);
    T* yt = static_cast<T*>(y);
    // 32-bit index arithmetic when it cannot overflow (i + stride stays below 2^31).
    if (total + static_cast<int64_t>(blocks) * kThreads < (int64_t{1} << 31)) {
        bias_act_kernel<T, B, int32_t, REF><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
            xt, bt, rt, yt, static_cast<int32_t>(total), static_cast<int32_t>(c), static_cast<int32_t>(s), slope, gain);
    } else {
        bias_act_kernel<T, B, int64_t, REF><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
            xt, bt, rt, yt, total, c, s, slope, gain);
    }
    return cudaGetLastError();
}

template <bool REF>
cudaError_t dispatch(const void* x, const void* bias, DType bias_dtype, const void* ref, void* y, DType dtype,
                     int64_t n, int64_t c, int64_t s, double slope, double gain, cudaStream_t stream) {
    if (n < 0 || c < 1 || s < 1) return cudaErrorInvalidValue;
    if (n > 0 && c > (int64_t{1} << 62) / n / s) return cudaErrorInvalidValue;
    if (n == 0) return cudaSuccess;  // empty tensors may carry null pointers
    if (x == nullptr || y == nullptr || (REF && ref == nullptr)) return cudaErrorInvalidValue;
    const bool float_bias = bias != nullptr && bias_dtype == DType::kFloat32;
    if (bias != nullptr && bias_dtype != dtype && !float_bias) return cudaErrorInvalidValue;
    switch (dtype) {
        case DType::kFloat32:
            return launch<float, float, REF>(x, bias, ref, y, n, c, s, slope, gain, stream);
        case DType::kFloat64:
            return launch<double, double, REF>(x, bias, ref, y, n, c, s, slope, gain, stream);
        case DType::kFloat16:
            if (float_bias) return launch<__half, float, REF>(x, bias, ref, y, n, c, s, slope, gain, stream);
            return launch<__half, __half, REF>(x, bias, ref, y, n, c, s, slope, gain, stream);
    }
    return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t bias_leaky_relu(const void* x, const void* bias, DType bias_dtype, void* y, DType dtype, int64_t n,
                            int64_t c, int64_t s, double negative_slope, double gain, cudaStream_t stream) {
    return dispatch<false>(x, bias, bias_dtype, nullptr, y, dtype, n, c, s, negative_slope, gain, stream);
}

cudaError_t bias_leaky_relu_grad(const void* grad, const void* bias, DType bias_dtype, const void* ref, void* grad_x,
                                 DType dtype, int64_t n, int64_t c, int64_t s, double negative_slope, double gain,
                                 cudaStream_t stream) {
    // The sign of the saved output equals the sign of x + bias only for a positive gain.
    if (!(gain > 0.0)) return cudaErrorInvalidValue;
    return dispatch<true>(grad, bias, bias_dtype, ref, grad_x, dtype, n, c, s, negative_slope, gain, stream);
}

}  // namespace cptr
