"""A tensor stage (mapping, synthesis, encoder, mapper) run from its exported files.

The Python-backend twin of ``platform: "onnxruntime_onnx"``: the same file, the same tensor names.
One engine per stage, chosen by the export:

* ``cptr-export --engine torch`` left a compiled ``model.pt2`` beside the ONNX file: the stage runs
  it (on the GPU when CUDA is present).
* ``cptr-export --engine openvino`` wrote ``model.xml`` + ``model.bin`` and the config's parameter
  ``engine: openvino`` with its precision and tuning (:class:`cptr.engines.openvino.EngineConfig`):
  the stage compiles the IR with them. bf16 runs only where the CPU has it; elsewhere the stage
  logs a notice and runs fp32 (:func:`cptr.engines.openvino.resolve_precision`, as the export does).
* otherwise, ONNX Runtime runs ``model.onnx``.

An engine that cannot load on this machine (a CUDA package on a CPU, OpenVINO not installed) falls
back to ONNX Runtime on the same stage, with a log line that says why.
"""

from __future__ import annotations

import os

import numpy as np

from cptr.engines.openvino import EngineConfig, OpenVINOEngine
from cptr.serving.models.base import Arrays, StageModel


class TritonPythonModel(StageModel):
    merge_requests = True

    def setup(self) -> None:
        self.output_names = list(self.output_dtypes)
        self.input_names = [s.name for s in self.inputs]
        self.engine = None  # a torch engine
        self.openvino = None
        torch_engine = self.model_dir / self.params.get("torch_engine_file", "model.pt2")
        if self.params.get("engine") == "openvino":
            try:
                self._load_openvino(self.model_dir / self.params.get("openvino_file", "model.xml"))
                return
            except Exception as e:  # noqa: BLE001 - any load failure means: serve the ONNX file
                print(f"[cptr] {self.model_name}: OpenVINO engine not usable here ({e}); using ONNX Runtime", flush=True)
        elif torch_engine.is_file() and os.environ.get("CPTR_DISABLE_TORCH_ENGINE") != "1":
            try:
                self._load_torch_engine(torch_engine)
                return
            except Exception as e:  # noqa: BLE001 - any load failure means: serve the ONNX file
                print(f"[cptr] {self.model_name}: torch engine {torch_engine} not usable here ({e}); using ONNX Runtime", flush=True)
        from cptr.engines.onnxruntime import ort_session  # the ONNX Runtime options CPTR measured best

        path = self.model_dir / self.params.get("onnx_file", "model.onnx")
        self.session = ort_session(path)
        have = {i.name for i in self.session.get_inputs()} | {o.name for o in self.session.get_outputs()}
        want = set(self.input_names) | set(self.output_names)
        if want - have:
            raise RuntimeError(f"{path} lacks tensors {sorted(want - have)} named in config.pbtxt (it has {sorted(have)})")

    def _load_torch_engine(self, path) -> None:
        import torch

        from cptr.engines.torch_aot import load_torch_engine  # torch: only when this runs (the module is imported without it)

        if len(self.output_names) != 1:
            raise RuntimeError("torch engines serve single-output stages only")
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.engine = load_torch_engine(path, self.device)
        print(f"[cptr] {self.model_name}: serving torch engine {path.name} on {self.device}", flush=True)

    def _load_openvino(self, path) -> None:
        engine = OpenVINOEngine(path, EngineConfig.from_parameters(self.params))
        missing = (set(self.input_names) - set(engine.input_names)) | (set(self.output_names) - set(engine.output_names))
        if missing:
            raise RuntimeError(f"{path.name} lacks tensors {sorted(missing)} named in config.pbtxt")
        if engine.notice:
            print(f"[cptr] {self.model_name}: {engine.notice}", flush=True)
        info = engine.runtime_info()
        self.openvino = engine
        static = f", static batch {','.join(map(str, engine.config.static_batches))}" if engine.config.static_batches else ""
        print(
            f"[cptr] {self.model_name}: serving OpenVINO engine {path.name} ({engine.precision}, {info['performance_hint']}, "
            f"{info['streams']} stream(s), {info['threads']} thread(s){static}) on CPU",
            flush=True,
        )

    def compute(self, inputs: Arrays) -> Arrays:
        if self.openvino is not None:
            outs = self.openvino(inputs)
            return {n: outs[n] for n in self.output_names}
        if self.engine is None:
            return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))
        import torch  # loaded by _load_torch_engine already

        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(inputs[n])).to(self.device) for n in self.input_names]
            out = self.engine(*args)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return {self.output_names[0]: out.float().cpu().numpy()}
