"""``preprocess``: photo bytes -> one row per face: its FFHQ-aligned crop in [-1, 1], its crop-to-photo transform,
and the photo's bytes and paste_back flag laid out for postprocess (FACE_ROWS in :mod:`cptr.contracts`)."""

from __future__ import annotations

import numpy as np

from cptr.contracts import (
    ALIGNED,
    ALIGNED_SIZE,
    FACE_IMAGE_BYTES,
    FACE_PASTE_BACK,
    IMAGE_BYTES,
    LARGEST,
    MAX_FACES_PER_PHOTO,
    PASTE_BACK,
    TOO_MANY_FACES,
    TRANSFORM,
)
from cptr.serving.errors import RequestError
from cptr.serving.models.base import Arrays, StageModel
from cptr.serving.stages import decode_and_align_faces


class TritonPythonModel(StageModel):
    fans_out = True

    def setup(self) -> None:
        import cptr.align  # noqa: F401 - fail at load time, not on the first request, without the [align] extra

        self.size = int(self.params.get("aligned_size", ALIGNED_SIZE))
        # Every face of one request goes through the encoder as one batch: no more than its max_batch_size.
        self.max_faces = min(int(self.params.get("max_faces", MAX_FACES_PER_PHOTO)), self.batch_max)

    def compute(self, inputs: Arrays) -> Arrays:
        items = inputs[IMAGE_BYTES.name].reshape(-1)
        largest = inputs.get(LARGEST.name, np.zeros((len(items), 1), np.int32)).reshape(-1)
        paste = inputs.get(PASTE_BACK.name, np.zeros((len(items), 1), np.int32)).reshape(-1)
        aligned, transforms, photos, pastes = [], [], [], []
        for i, data in enumerate(items):
            try:
                _, crops, matrices = decode_and_align_faces(bytes(data), self.size, largest=bool(largest[i]), max_faces=self.max_faces)
            except ValueError as e:
                if len(items) > 1:
                    e.args = (f"photo {i}: {e}",)
                raise
            aligned += list(crops)
            transforms += list(matrices)
            photos += [bytes(data)] + [b""] * (len(crops) - 1)
            pastes += [int(paste[i])] * len(crops)
        if len(aligned) > self.max_faces:
            raise RequestError(
                TOO_MANY_FACES,
                f"these {len(items)} photos hold {len(aligned)} faces together, more than the {self.max_faces} one request "
                "may have: send the photos in separate requests",
            )
        return {
            ALIGNED.name: np.stack(aligned),
            TRANSFORM.name: np.stack(transforms),
            FACE_IMAGE_BYTES: np.array(photos, dtype=np.object_).reshape(-1, 1),
            FACE_PASTE_BACK: np.array(pastes, dtype=np.int32).reshape(-1, 1),
        }
