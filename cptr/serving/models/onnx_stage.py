"""A tensor stage (mapping, synthesis, encoder, mapper) run from its exported files.

The Python-backend twin of ``platform: "onnxruntime_onnx"``: the same file, the same tensor names.
When ``cptr-export --engine torch`` left a compiled ``model.pt2`` beside the ONNX file, the stage
runs that instead (on the GPU when CUDA is present), and falls back to ONNX Runtime if the package
cannot be loaded on this machine (e.g. built for CUDA, served on a CPU).
"""

from __future__ import annotations

import os

import numpy as np

from cptr.serving.models.base import Arrays, StageModel


class TritonPythonModel(StageModel):
    merge_requests = True

    def setup(self) -> None:
        self.output_names = list(self.output_dtypes)
        self.input_names = [s.name for s in self.inputs]
        engine = self.model_dir / self.params.get("torch_engine_file", "model.pt2")
        self.engine = None
        if engine.is_file() and os.environ.get("CPTR_DISABLE_TORCH_ENGINE") != "1":
            try:
                self._load_torch_engine(engine)
                return
            except Exception as e:  # noqa: BLE001 - any load failure means: serve the ONNX file
                print(f"[cptr] {self.model_name}: torch engine {engine} not usable here ({e}); using ONNX Runtime", flush=True)
        from cptr.export.runtime import ort_session  # the ONNX Runtime options CPTR measured best

        path = self.model_dir / self.params.get("onnx_file", "model.onnx")
        self.session = ort_session(path)
        have = {i.name for i in self.session.get_inputs()} | {o.name for o in self.session.get_outputs()}
        want = set(self.input_names) | set(self.output_names)
        if want - have:
            raise RuntimeError(f"{path} lacks tensors {sorted(want - have)} named in config.pbtxt (it has {sorted(have)})")

    def _load_torch_engine(self, path) -> None:
        import torch

        from cptr.export.torch_engine import load_torch_engine

        if len(self.output_names) != 1:
            raise RuntimeError("torch engines serve single-output stages only")
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.engine = load_torch_engine(path, self.device)
        print(f"[cptr] {self.model_name}: serving torch engine {path.name} on {self.device}", flush=True)

    def compute(self, inputs: Arrays) -> Arrays:
        if self.engine is None:
            return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))
        import torch  # loaded by _load_torch_engine already

        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(inputs[n])).to(self.device) for n in self.input_names]
            out = self.engine(*args)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return {self.output_names[0]: out.float().cpu().numpy()}
