"""Face alignment: photo bytes -> FFHQ-aligned crop for the generators, and paste-back.

Typical use::

    from cptr.align import load_image, detect_landmarks, align_face, paste_back

    photo = load_image(request_bytes)                  # EXIF-upright 8-bit RGB, size-bounded
    face = detect_landmarks(photo)[0]                  # largest face (MediaPipe by default)
    aligned = align_face(photo, face, size=256)        # aligned.crop: (256, 256, 3) uint8
    result = paste_back(photo, stylized_crop, aligned) # stylized face blended into the photo

Needs the ``[align]`` extra (MediaPipe, dlib, OpenCV): ``pip install 'cptr[align]'``.
"""

try:
    import cv2  # noqa: F401  (OpenCV comes with mediapipe: opencv-contrib-python)
except ImportError as _e:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(f"cptr.align needs OpenCV ({_e}); install it with: pip install 'cptr[align]'") from None

from .errors import (
    AlignError,
    BadImageError,
    FaceTooSmallError,
    ImageTooLargeError,
    MissingBackendError,
    NoFaceError,
)
from .ffhq import (
    FACE_ELLIPSE,
    Aligned,
    align_face,
    aligned_from_transform,
    encoder_input,
    face_mask,
    feather_mask,
    ffhq_quad,
    paste_back,
    quad_to_matrix,
)
from .image_io import DEFAULT_MAX_PIXELS, SUPPORTED_FORMATS, is_grayscale, load_image
from .landmarks import (
    BACKENDS,
    DEFAULT_DETECT_SIZE,
    DEFAULT_MIN_FACE_SIZE,
    POLICIES,
    Face,
    detect_landmarks,
)

__all__ = [
    "AlignError",
    "Aligned",
    "BACKENDS",
    "BadImageError",
    "DEFAULT_DETECT_SIZE",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_FACE_SIZE",
    "Face",
    "FaceTooSmallError",
    "ImageTooLargeError",
    "MissingBackendError",
    "NoFaceError",
    "POLICIES",
    "SUPPORTED_FORMATS",
    "align_face",
    "aligned_from_transform",
    "encoder_input",
    "detect_landmarks",
    "FACE_ELLIPSE",
    "face_mask",
    "feather_mask",
    "ffhq_quad",
    "is_grayscale",
    "load_image",
    "paste_back",
    "quad_to_matrix",
]
