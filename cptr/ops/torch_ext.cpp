// PyTorch binding of the CPTR CUDA kernels (built lazily by cptr/ops/extension.py).
//
// Thin wrappers: check the tensors, allocate the output, call the launchers of cptr_kernels.h on the
// current CUDA stream. Autograd lives in Python (cptr/ops/upfirdn2d.py, cptr/ops/bias_act.py).
#include <torch/extension.h>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "cptr_kernels.h"

namespace {

cptr::DType to_dtype(const at::Tensor& t, const char* what) {
    switch (t.scalar_type()) {
        case at::kFloat: return cptr::DType::kFloat32;
        case at::kHalf: return cptr::DType::kFloat16;
        case at::kDouble: return cptr::DType::kFloat64;
        default: break;
    }
    TORCH_CHECK(false, what, " must be float32, float16 or float64, got ", t.scalar_type());
    return cptr::DType::kFloat32;  // unreachable
}

void check_launch(cudaError_t err, const char* op) {
    TORCH_CHECK(err == cudaSuccess, op, " CUDA launch failed: ", cudaGetErrorString(err),
                err == cudaErrorInvalidValue ? " (invalid shape or parameters)" : "");
}

void check_cuda(const at::Tensor& t, const char* what, const at::Tensor& like) {
    TORCH_CHECK(t.is_cuda(), what, " must be a CUDA tensor");
    TORCH_CHECK(t.device() == like.device(), what, " is on ", t.device(), " but the input is on ", like.device());
}

// x: [N, C, H, W]; kernel: [kh, kw] float32 (any device, copied to x's device if needed).
at::Tensor upfirdn2d(const at::Tensor& x_in, const at::Tensor& kernel_in, int64_t up_x, int64_t up_y, int64_t down_x,
                     int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
    TORCH_CHECK(x_in.is_cuda(), "upfirdn2d: x must be a CUDA tensor");
    TORCH_CHECK(x_in.dim() == 4, "upfirdn2d: x must be NCHW, got ", x_in.sizes());
    TORCH_CHECK(kernel_in.dim() == 2, "upfirdn2d: kernel must be 2-D [kh, kw], got ", kernel_in.sizes());
    const int64_t kh = kernel_in.size(0), kw = kernel_in.size(1);
    TORCH_CHECK(kh >= 1 && kw >= 1 && kh <= cptr::kMaxFirSide && kw <= cptr::kMaxFirSide,
                "upfirdn2d: kernel must be at most ", cptr::kMaxFirSide, "x", cptr::kMaxFirSide, ", got ", kh, "x", kw);
    const cptr::DType dtype = to_dtype(x_in, "upfirdn2d: x");
    const c10::cuda::CUDAGuard guard(x_in.device());
    const at::Tensor x = x_in.contiguous();
    const at::Tensor kernel = kernel_in.to(x.device(), at::kFloat).contiguous();

    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    const int64_t out_h = cptr::upfirdn2d_out_size(h, static_cast<int>(up_y), static_cast<int>(down_y),
                                                   static_cast<int>(pad_y0), static_cast<int>(pad_y1), static_cast<int>(kh));
    const int64_t out_w = cptr::upfirdn2d_out_size(w, static_cast<int>(up_x), static_cast<int>(down_x),
                                                   static_cast<int>(pad_x0), static_cast<int>(pad_x1), static_cast<int>(kw));
    TORCH_CHECK(out_h >= 1 && out_w >= 1, "upfirdn2d: input ", x.sizes(), " with up=(", up_x, ", ", up_y, "), down=(",
                down_x, ", ", down_y, "), pad=(", pad_x0, ", ", pad_x1, ", ", pad_y0, ", ", pad_y1, ") and a ", kh, "x",
                kw, " kernel leaves an empty output");
    at::Tensor y = at::empty({n, c, out_h, out_w}, x.options());
    if (y.numel() == 0) return y;

    cptr::UpFirDn2dParams p;
    p.up_x = static_cast<int>(up_x);
    p.up_y = static_cast<int>(up_y);
    p.down_x = static_cast<int>(down_x);
    p.down_y = static_cast<int>(down_y);
    p.pad_x0 = static_cast<int>(pad_x0);
    p.pad_x1 = static_cast<int>(pad_x1);
    p.pad_y0 = static_cast<int>(pad_y0);
    p.pad_y1 = static_cast<int>(pad_y1);
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
    check_launch(cptr::upfirdn2d(x.data_ptr(), y.data_ptr(), dtype, n * c, static_cast<int>(h), static_cast<int>(w),
                                 kernel.data_ptr<float>(), /*taps_on_device=*/true, static_cast<int>(kh),
                                 static_cast<int>(kw), p, stream),
                 "upfirdn2d");
    return y;
}

// Shape [n, c, s] of a tensor with at least 2 dims, bias on dim 1.
std::vector<int64_t> ncs(const at::Tensor& x) {
    int64_t s = 1;
    for (int64_t d = 2; d < x.dim(); ++d) s *= x.size(d);
    return {x.size(0), x.size(1), s};
}

at::Tensor prepare_bias(const std::optional<at::Tensor>& bias, const at::Tensor& x, const char* op) {
    if (!bias.has_value() || !bias->defined()) return at::Tensor();
    check_cuda(*bias, "bias", x);
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == x.size(1), op, ": bias of shape ", bias->sizes(),
                " does not match ", x.size(1), " channels of input ", x.sizes());
    return bias->to(x.scalar_type()).contiguous();
}

at::Tensor bias_leaky_relu(const at::Tensor& x_in, const std::optional<at::Tensor>& bias_in, double negative_slope,
                           double gain) {
    TORCH_CHECK(x_in.is_cuda(), "fused_leaky_relu: x must be a CUDA tensor");
    TORCH_CHECK(x_in.dim() >= 2, "fused_leaky_relu: x must have at least 2 dims [N, C, ...], got ", x_in.sizes());
    const cptr::DType dtype = to_dtype(x_in, "fused_leaky_relu: x");
    const c10::cuda::CUDAGuard guard(x_in.device());
    const at::Tensor x = x_in.contiguous();
    const at::Tensor bias = prepare_bias(bias_in, x, "fused_leaky_relu");
    at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
    if (y.numel() == 0) return y;
    const auto d = ncs(x);
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
    check_launch(cptr::bias_leaky_relu(x.data_ptr(), bias.defined() ? bias.data_ptr() : nullptr, dtype, y.data_ptr(),
                                       dtype, d[0], d[1], d[2], negative_slope, gain, stream),
                 "fused_leaky_relu");
    return y;
}

// grad_x = (grad + bias) * gain * (ref > 0 ? 1 : slope); ref is the saved forward output.
at::Tensor bias_leaky_relu_grad(const at::Tensor& grad_in, const std::optional<at::Tensor>& bias_in,
                                const at::Tensor& ref_in, double negative_slope, double gain) {
    TORCH_CHECK(grad_in.is_cuda(), "fused_leaky_relu backward: grad must be a CUDA tensor");
    TORCH_CHECK(grad_in.dim() >= 2, "fused_leaky_relu backward: grad must have at least 2 dims, got ", grad_in.sizes());
    TORCH_CHECK(ref_in.sizes() == grad_in.sizes(), "fused_leaky_relu backward: saved output ", ref_in.sizes(),
                " and grad ", grad_in.sizes(), " differ in shape");
    TORCH_CHECK(gain > 0.0, "fused_leaky_relu backward needs a positive gain, got ", gain);
    const cptr::DType dtype = to_dtype(grad_in, "fused_leaky_relu backward: grad");
    check_cuda(ref_in, "saved output", grad_in);
    const c10::cuda::CUDAGuard guard(grad_in.device());
    const at::Tensor grad = grad_in.contiguous();
    const at::Tensor ref = ref_in.to(grad.scalar_type()).contiguous();
    const at::Tensor bias = prepare_bias(bias_in, grad, "fused_leaky_relu backward");
    at::Tensor out = at::empty_like(grad, at::MemoryFormat::Contiguous);
    if (out.numel() == 0) return out;
    const auto d = ncs(grad);
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(grad.device().index()).stream();
    check_launch(cptr::bias_leaky_relu_grad(grad.data_ptr(), bias.defined() ? bias.data_ptr() : nullptr, dtype,
                                            ref.data_ptr(), out.data_ptr(), dtype, d[0], d[1], d[2],
                                            negative_slope, gain, stream),
                 "fused_leaky_relu backward");
    return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "CPTR CUDA kernels: upfirdn2d and fused bias + leaky ReLU";
    m.def("upfirdn2d", &upfirdn2d, "upfirdn2d(x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1)",
          py::arg("x"), py::arg("kernel"), py::arg("up_x"), py::arg("up_y"), py::arg("down_x"), py::arg("down_y"),
          py::arg("pad_x0"), py::arg("pad_x1"), py::arg("pad_y0"), py::arg("pad_y1"));
    m.def("bias_leaky_relu", &bias_leaky_relu, "leaky_relu(x + bias, negative_slope) * gain", py::arg("x"),
          py::arg("bias"), py::arg("negative_slope"), py::arg("gain"));
    m.def("bias_leaky_relu_grad", &bias_leaky_relu_grad, "(grad + bias) * gain * (ref > 0 ? 1 : negative_slope)",
          py::arg("grad"), py::arg("bias"), py::arg("ref"), py::arg("negative_slope"), py::arg("gain"));
    m.attr("max_fir_side") = cptr::kMaxFirSide;
}
