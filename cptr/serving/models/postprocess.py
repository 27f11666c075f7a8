"""``postprocess``: generator image -> PNG bytes, optionally pasted back into the photo."""

from __future__ import annotations

import numpy as np

from cptr.contracts import IMAGE_BYTES, OUTPUT_BYTES, PASTE_BACK, TRANSFORM
from cptr.serving.models.base import Arrays, StageModel
from cptr.serving.stages import render


class TritonPythonModel(StageModel):
    def setup(self) -> None:
        self.image_name = self.param("image_input")

    def compute(self, inputs: Arrays) -> Arrays:
        images = inputs[self.image_name]
        photos = inputs.get(IMAGE_BYTES.name)
        transforms = inputs.get(TRANSFORM.name)
        paste = inputs.get(PASTE_BACK.name)
        out = np.empty((len(images), 1), dtype=np.object_)
        for i, image in enumerate(images):
            pasted = bool(paste is not None and paste[i, 0])
            photo = bytes(photos[i, 0]) if photos is not None else None
            out[i, 0] = render(image, photo, transforms[i] if transforms is not None else None, pasted)
        return {OUTPUT_BYTES.name: out, self.image_name: images}  # the raw image passes through
