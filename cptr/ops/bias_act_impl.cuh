// Fused bias + leaky ReLU + gain: the per-element math, shared by bias_act.cu and the host emulation.
#pragma once

#include "kernel_common.cuh"

namespace cptr {
namespace detail {

// Channel of flat element i of a dense [n, c, s] tensor.
template <typename Index>
CPTR_HD Index channel_of(Index i, Index c, Index s) { return (i / s) % c; }

// Forward: leaky_relu(v + b) * gain.
template <typename Acc>
CPTR_HD Acc bias_leaky_relu_value(Acc v, Acc b, Acc slope, Acc gain) {
    const Acc t = v + b;
    return (t > Acc(0) ? t : t * slope) * gain;
}

// Backward: (g + b) * gain * (ref > 0 ? 1 : slope), ref being the forward output.
template <typename Acc>
CPTR_HD Acc bias_leaky_relu_grad_value(Acc g, Acc b, Acc ref, Acc slope, Acc gain) {
    return (g + b) * gain * (ref > Acc(0) ? Acc(1) : slope);
}

}  // namespace detail
}  // namespace cptr
