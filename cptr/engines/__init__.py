"""The engines a stage runs on, each with how it is built and loaded: ONNX Runtime
(:mod:`.onnxruntime`), OpenVINO (:mod:`.openvino`), AOTInductor packages (:mod:`.torch_aot`) and
TensorRT plans (:mod:`.tensorrt`). ``cptr-export`` builds them; serving and the benchmarks load them."""


class ExportError(RuntimeError):
    """An export could not be produced; the message says which stage and why."""


class VerificationError(ExportError):
    """An engine's output differs from PyTorch by more than the tolerance."""
