"""``postprocess``: generator images -> PNG bytes, and each photo's composite (its faces pasted back).

Its rows are faces (FACE_ROWS in :mod:`cptr.contracts`): a photo's bytes come in the row of its first face.
"""

from __future__ import annotations

from cptr.contracts import COMPOSITE, IMAGE_BYTES, OUTPUT_BYTES, PASTE_BACK, TRANSFORM
from cptr.serving.models.base import Arrays, StageModel
from cptr.serving.stages import render_faces


class TritonPythonModel(StageModel):
    def setup(self) -> None:
        self.image_name = self.param("image_input")

    def compute(self, inputs: Arrays) -> Arrays:
        images = inputs[self.image_name]
        out, comp = render_faces(images, inputs.get(IMAGE_BYTES.name), inputs.get(TRANSFORM.name), inputs.get(PASTE_BACK.name))
        return {OUTPUT_BYTES.name: out, self.image_name: images, COMPOSITE.name: comp}  # the raw image passes through
