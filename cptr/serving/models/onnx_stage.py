"""A tensor stage (mapping, synthesis, encoder, mapper) run from its ONNX file with ONNX Runtime.

The Python-backend twin of ``platform: "onnxruntime_onnx"``: the same file, the same tensor names.
"""

from __future__ import annotations

from cptr.serving.models.base import Arrays, StageModel


class TritonPythonModel(StageModel):
    merge_requests = True

    def setup(self) -> None:
        from cptr.export.runtime import ort_session  # the ONNX Runtime options CPTR measured best

        path = self.model_dir / self.params.get("onnx_file", "model.onnx")
        self.session = ort_session(path)
        have = {i.name for i in self.session.get_inputs()} | {o.name for o in self.session.get_outputs()}
        want = {s.name for s in self.inputs} | set(self.output_dtypes)
        if want - have:
            raise RuntimeError(f"{path} lacks tensors {sorted(want - have)} named in config.pbtxt (it has {sorted(have)})")
        self.output_names = list(self.output_dtypes)

    def compute(self, inputs: Arrays) -> Arrays:
        return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))
