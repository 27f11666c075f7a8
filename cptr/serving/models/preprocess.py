"""``preprocess``: photo bytes -> FFHQ-aligned crop in [-1, 1] and the crop-to-photo transform."""

from __future__ import annotations

import numpy as np

from cptr.contracts import ALIGNED, ALIGNED_SIZE, IMAGE_BYTES, TRANSFORM
from cptr.serving.models.base import Arrays, StageModel
from cptr.serving.stages import decode_and_align


class TritonPythonModel(StageModel):
    def setup(self) -> None:
        import cptr.align  # noqa: F401 - fail at load time, not on the first request, without the [align] extra

        self.size = int(self.params.get("aligned_size", ALIGNED_SIZE))

    def compute(self, inputs: Arrays) -> Arrays:
        items = inputs[IMAGE_BYTES.name].reshape(-1)
        aligned, transforms = [], []
        for i, data in enumerate(items):
            try:
                _, crop, matrix = decode_and_align(bytes(data), self.size)
            except ValueError as e:
                if len(items) > 1:
                    e.args = (f"photo {i}: {e}",)
                raise
            aligned.append(crop)
            transforms.append(matrix)
        return {ALIGNED.name: np.stack(aligned), TRANSFORM.name: np.stack(transforms)}
