// CPTR CUDA kernels: the public launch API shared by the PyTorch extension and the TensorRT plugins.
//
// Plain C++ (no torch, no TensorRT types): raw device pointers, shapes, a dtype tag and a stream.
// Every launcher validates its arguments, enqueues work on `stream` and returns cudaSuccess,
// cudaErrorInvalidValue for bad arguments (nothing is launched), or the launch error.
// Tensors are dense NCHW (bias-act: [N, C, *]) in the same dtype; arithmetic runs in float for
// half inputs and in double for double inputs (negative_slope and gain are rounded to that type).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace cptr {

enum class DType : int32_t {
    kFloat32 = 0,
    kFloat16 = 1,
    kFloat64 = 2,
};

// Largest FIR kernel the launchers accept: kh <= 16 and kw <= 16.
constexpr int kMaxFirSide = 16;
constexpr int kMaxFirTaps = kMaxFirSide * kMaxFirSide;

// upfirdn2d parameters (rosinality semantics), per axis.
// out = downsample(conv(pad(upsample(x))), flipped kernel)), where upsample inserts up-1 zeros after
// each sample, pad adds pad0 before / pad1 after (negative values crop), the FIR kernel is applied as
// a true convolution and downsample keeps samples 0, down, 2*down, ...
struct UpFirDn2dParams {
    int up_x = 1;
    int up_y = 1;
    int down_x = 1;
    int down_y = 1;
    int pad_x0 = 0;
    int pad_x1 = 0;
    int pad_y0 = 0;
    int pad_y1 = 0;
};

// Output length of one axis: (in * up + pad0 + pad1 - k) / down + 1 (floor division).
// Returns a value < 1 when the configuration leaves no output sample.
int64_t upfirdn2d_out_size(int64_t in, int up, int down, int pad0, int pad1, int k);

// y[planes, out_h, out_w] = upfirdn2d(x[planes, in_h, in_w]) for planes = N * C.
// `taps` holds kh * kw float32 values, row-major, NOT flipped (the kernel flips them); it points to
// device memory when taps_on_device is true, else to host memory that is copied into the launch
// parameters (nothing to keep alive after the call; usable inside CUDA graph capture).
// 4x4 kernels with (up, down) in {(1,1), (2,1), (1,2)} on both axes use shared-memory tiled
// kernels; everything else uses a general kernel (one thread per output sample).
cudaError_t upfirdn2d(const void* x, void* y, DType dtype, int64_t planes, int in_h, int in_w,
                      const float* taps, bool taps_on_device, int kh, int kw,
                      const UpFirDn2dParams& params, cudaStream_t stream);

// Forward fused bias + leaky ReLU + gain on x[n, c, s] (s = product of trailing dims, 1 for [N, C]):
//   y = leaky_relu(x + bias[c], negative_slope) * gain
// bias may be null (no bias). bias_dtype is either dtype or kFloat32.
cudaError_t bias_leaky_relu(const void* x, const void* bias, DType bias_dtype, void* y, DType dtype,
                            int64_t n, int64_t c, int64_t s, double negative_slope, double gain,
                            cudaStream_t stream);

// Gradient of bias_leaky_relu with respect to x (and, summed over n and s, to bias):
//   grad_x = (grad + bias[c]) * gain * (ref > 0 ? 1 : negative_slope)
// where ref is the saved forward output (its sign equals the sign of x + bias because gain > 0).
// bias is normally null; a non-null bias carries the bias part of a double-backward pass.
cudaError_t bias_leaky_relu_grad(const void* grad, const void* bias, DType bias_dtype, const void* ref,
                                 void* grad_x, DType dtype, int64_t n, int64_t c, int64_t s,
                                 double negative_slope, double gain, cudaStream_t stream);

// Human-readable dtype name for error messages.
const char* dtype_name(DType dtype);

}  // namespace cptr
