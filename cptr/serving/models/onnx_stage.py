"""A tensor stage (mapping, synthesis, encoder, mapper) run from its ONNX file with ONNX Runtime.

The Python-backend twin of ``platform: "onnxruntime_onnx"``: the same file, the same tensor names.
"""

from __future__ import annotations

from cptr.serving.models.base import Arrays, StageModel


class TritonPythonModel(StageModel):
    merge_requests = True

    def setup(self) -> None:
        try:
            from cptr.export.runtime import ort_session  # registers CPTR's custom ops, if any
        except ImportError:  # TODO(serving): drop once cptr.export.runtime lands
            import onnxruntime

            def ort_session(p):  # type: ignore[no-redef]
                return onnxruntime.InferenceSession(str(p), providers=["CPUExecutionProvider"])

        path = self.model_dir / self.params.get("onnx_file", "model.onnx")
        self.session = ort_session(path)
        have = {i.name for i in self.session.get_inputs()} | {o.name for o in self.session.get_outputs()}
        want = {s.name for s in self.inputs} | set(self.output_dtypes)
        if want - have:
            raise RuntimeError(f"{path} lacks tensors {sorted(want - have)} named in config.pbtxt (it has {sorted(have)})")
        self.output_names = list(self.output_dtypes)

    def compute(self, inputs: Arrays) -> Arrays:
        return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))
