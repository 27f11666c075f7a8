// Helpers shared by the device kernels and by the host emulation (testing/host_emulation.cpp).
//
// Everything here is __host__ __device__ so the index arithmetic of the kernels can be executed and
// checked on a machine without a GPU.
#pragma once

#include <cstdint>

#include <cuda_fp16.h>

#if defined(__CUDACC__)
#define CPTR_HD __host__ __device__ __forceinline__
#else
#define CPTR_HD inline
#endif

namespace cptr {
namespace detail {

// Accumulation type: float for float/half, double for double.
template <typename T>
struct AccType {
    using type = float;
};
template <>
struct AccType<double> {
    using type = double;
};

template <typename Acc>
CPTR_HD Acc to_acc(float v) { return static_cast<Acc>(v); }
template <typename Acc>
CPTR_HD Acc to_acc(double v) { return static_cast<Acc>(v); }
template <typename Acc>
CPTR_HD Acc to_acc(__half v) { return static_cast<Acc>(__half2float(v)); }

template <typename T>
struct FromAcc;
template <>
struct FromAcc<float> {
    template <typename Acc>
    static CPTR_HD float apply(Acc v) { return static_cast<float>(v); }
};
template <>
struct FromAcc<double> {
    template <typename Acc>
    static CPTR_HD double apply(Acc v) { return static_cast<double>(v); }
};
template <>
struct FromAcc<__half> {
    template <typename Acc>
    static CPTR_HD __half apply(Acc v) { return __float2half_rn(static_cast<float>(v)); }
};

template <typename T, typename Acc>
CPTR_HD T from_acc(Acc v) { return FromAcc<T>::apply(v); }

// Floor division and modulo for a positive divisor (C++ '/' truncates toward zero).
CPTR_HD int floor_div(int a, int b) {
    const int q = a / b;
    return (q * b > a) ? q - 1 : q;
}
CPTR_HD int floor_mod(int a, int b) { return a - floor_div(a, b) * b; }

}  // namespace detail
}  // namespace cptr
