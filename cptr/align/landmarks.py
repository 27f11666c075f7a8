"""Face landmarks from a photo: MediaPipe face mesh (default) or dlib's 68-point model.

Both back-ends work offline from model files shipped inside their pip packages. Detection runs
on a copy of the photo whose longest side is at most ``detect_size`` pixels; landmarks are then
computed on a full-resolution square around each face and mapped back to photo pixels.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from cptr.contracts import MIN_FACE_SIZE

from ._geometry import check_rgb, crop_square_resized, downscale_longest
from .errors import ALIGN_EXTRA_HINT, FaceTooSmallError, MissingBackendError, NoFaceError

Backend = Literal["mediapipe", "dlib"]
Policy = Literal["largest", "all"]
BACKENDS: tuple[str, ...] = ("mediapipe", "dlib")
POLICIES: tuple[str, ...] = ("largest", "all")

#: Faces whose :attr:`Face.size` (larger of eye-to-eye and eye-to-mouth distance, in photo
#: pixels) is below this are refused: the 256x256 crop would be upscaled more than ~2.7x.
DEFAULT_MIN_FACE_SIZE = MIN_FACE_SIZE
#: Longest side of the copy the face detector runs on.
DEFAULT_DETECT_SIZE = 640
#: A photo whose shorter side is below this gets "may be too small" when no face is found in it.
SMALL_PHOTO_SIDE = 128

# MediaPipe face-mesh (468 points) indices. "left"/"right" are as seen in the image: the
# image-left eye is the subject's right eye (FACEMESH_RIGHT_EYE contour).
_MP_EYE_LEFT = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173)
_MP_EYE_RIGHT = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398)
_MP_MOUTH_LEFT, _MP_MOUTH_RIGHT = 61, 291
# dlib 68-point indices (iBUG 300-W markup), as in the FFHQ recipe.
_DLIB_EYE_LEFT, _DLIB_EYE_RIGHT = slice(36, 42), slice(42, 48)
_DLIB_MOUTH_LEFT, _DLIB_MOUTH_RIGHT = 48, 54


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in photo pixel coordinates (pixel centres at integers).

    ``eye_left``/``mouth_left`` are the ones on the image's left (the subject's right).
    """

    landmarks: np.ndarray  # (N, 2) x, y: all points of the back-end (468 or 68)
    eye_left: np.ndarray  # (2,) centre of the image-left eye
    eye_right: np.ndarray  # (2,)
    mouth_left: np.ndarray  # (2,) image-left mouth corner
    mouth_right: np.ndarray  # (2,)
    box: np.ndarray  # (4,) detector box x0, y0, x1, y1
    score: float  # detector confidence (back-end specific scale)
    backend: str

    @property
    def eye_center(self) -> np.ndarray:
        return (self.eye_left + self.eye_right) * 0.5

    @property
    def mouth_center(self) -> np.ndarray:
        return (self.mouth_left + self.mouth_right) * 0.5

    @property
    def eye_to_eye(self) -> np.ndarray:
        return self.eye_right - self.eye_left

    @property
    def eye_to_mouth(self) -> np.ndarray:
        return self.mouth_center - self.eye_center

    @property
    def size(self) -> float:
        """Larger of the eye-to-eye and eye-to-mouth distances, in photo pixels."""
        return float(max(np.hypot(*self.eye_to_eye), np.hypot(*self.eye_to_mouth)))

    def keypoints(self) -> np.ndarray:
        """``(4, 2)``: eye_left, eye_right, mouth_left, mouth_right."""
        return np.stack([self.eye_left, self.eye_right, self.mouth_left, self.mouth_right])


class _Backend(Protocol):
    lock: threading.Lock

    def detect(self, small: np.ndarray, fx: float, fy: float) -> list[tuple[np.ndarray, float]]:
        """Face boxes (photo pixel coords x0, y0, x1, y1) and scores, found on ``small``."""

    def landmarks(self, image: np.ndarray, small: np.ndarray, fx: float, fy: float, box: np.ndarray, score: float) -> Face | None:
        """Landmarks of the face in ``box``, or None when the landmark model rejects it."""


def _missing(backend: str, module: str, err: Exception) -> MissingBackendError:
    return MissingBackendError(
        f"landmark back-end {backend!r} needs the Python package {module!r}, which is not importable ({err}); {ALIGN_EXTRA_HINT}"
    )


class _MediaPipeBackend:
    """BlazeFace full-range detector, then the 468-point face mesh on a square around each face."""

    mesh_input = 256  # side of the square the face mesh sees
    context = 2.0  # that square's side, in detector-box sizes (the mesh finds the face in it)

    def __init__(self) -> None:
        try:
            from mediapipe.python.solutions import face_detection, face_mesh
        except ImportError as e:
            raise _missing("mediapipe", "mediapipe", e) from None
        self.lock = threading.Lock()
        self._detector = face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
        self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2, refine_landmarks=False, min_detection_confidence=0.5)

    def detect(self, small: np.ndarray, fx: float, fy: float) -> list[tuple[np.ndarray, float]]:
        h, w = small.shape[:2]
        result = self._detector.process(small)
        found = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            # relative coords are scale-free: map to photo edge coords, then to centre coords
            x0, y0 = rb.xmin * w / fx - 0.5, rb.ymin * h / fy - 0.5
            box = np.array([x0, y0, x0 + rb.width * w / fx, y0 + rb.height * h / fy])
            found.append((box, float(det.score[0])))
        return found

    def landmarks(self, image: np.ndarray, small: np.ndarray, fx: float, fy: float, box: np.ndarray, score: float) -> Face | None:
        side = self.context * max(box[2] - box[0], box[3] - box[1])
        cx, cy = (box[0] + box[2]) / 2 + 0.5, (box[1] + box[3]) / 2 + 0.5  # edge coords
        x0, y0 = cx - side / 2, cy - side / 2
        out = self.mesh_input
        if side * min(fx, fy) >= out:  # the small copy has enough resolution: cheaper to crop
            crop = crop_square_resized(small, x0 * fx, y0 * fy, side * fx, out)
        else:
            crop = crop_square_resized(image, x0, y0, side, out)
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        best, best_dist = None, math.inf
        for lms in result.multi_face_landmarks:
            pts = np.array([(p.x, p.y) for p in lms.landmark], dtype=np.float64)
            dist = float(np.hypot(*(pts.mean(axis=0) - 0.5)))  # keep the face at the crop centre
            if dist < best_dist:
                best, best_dist = pts, dist
        pts = best * side + np.array([x0, y0]) - 0.5  # normalized -> photo centre coords
        return Face(
            landmarks=pts,
            eye_left=pts[list(_MP_EYE_LEFT)].mean(axis=0),
            eye_right=pts[list(_MP_EYE_RIGHT)].mean(axis=0),
            mouth_left=pts[_MP_MOUTH_LEFT].copy(),
            mouth_right=pts[_MP_MOUTH_RIGHT].copy(),
            box=box,
            score=score,
            backend="mediapipe",
        )


class _DlibBackend:
    """dlib HOG detector (upsampled once) and the 68-point shape predictor, as in FFHQ."""

    upsample = 1
    min_score = 0.25  # HOG SVM margin; spurious detections on textures score below ~0.15

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as e:
            raise _missing("dlib", "dlib (pip package dlib-bin)", e) from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # it imports the deprecated pkg_resources
                import face_recognition_models
            path = face_recognition_models.pose_predictor_model_location()
        except ImportError as e:
            raise _missing("dlib", "face_recognition_models", e) from None
        self.lock = threading.Lock()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(path)

    def detect(self, small: np.ndarray, fx: float, fy: float) -> list[tuple[np.ndarray, float]]:
        rects, scores, _ = self._detector.run(small, self.upsample, 0.0)
        found = []
        for r, s in zip(rects, scores):
            if s < self.min_score:
                continue
            # inclusive pixel rectangle on the small copy -> photo centre coords
            x0, y0 = (r.left() - 0.5) / fx - 0.5, (r.top() - 0.5) / fy - 0.5
            x1, y1 = (r.right() + 0.5) / fx - 0.5, (r.bottom() + 0.5) / fy - 0.5
            found.append((np.array([x0, y0, x1, y1]), float(s)))
        return found

    def landmarks(self, image: np.ndarray, small: np.ndarray, fx: float, fy: float, box: np.ndarray, score: float) -> Face | None:
        rect = self._dlib.rectangle(round(box[0] + 0.5), round(box[1] + 0.5), round(box[2] - 0.5), round(box[3] - 0.5))
        shape = self._predictor(image, rect)
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        return Face(
            landmarks=pts,
            eye_left=pts[_DLIB_EYE_LEFT].mean(axis=0),
            eye_right=pts[_DLIB_EYE_RIGHT].mean(axis=0),
            mouth_left=pts[_DLIB_MOUTH_LEFT].copy(),
            mouth_right=pts[_DLIB_MOUTH_RIGHT].copy(),
            box=box,
            score=score,
            backend="dlib",
        )


_BACKEND_TYPES = {"mediapipe": _MediaPipeBackend, "dlib": _DlibBackend}
_instances: dict[str, _Backend] = {}
_instances_lock = threading.Lock()


def _get_backend(name: str) -> _Backend:
    """The cached back-end instance (model loading takes 10-500 ms, so it happens once)."""
    if name not in _BACKEND_TYPES:
        raise ValueError(f"unknown landmark back-end {name!r}; choose one of: {', '.join(BACKENDS)}")
    with _instances_lock:
        if name not in _instances:
            _instances[name] = _BACKEND_TYPES[name]()
        return _instances[name]


def _no_face_hint(w: int, h: int) -> str:
    """What to try when no face was found: a larger photo first, when this one is small."""
    if min(w, h) < SMALL_PHOTO_SIDE:
        return f"the photo may be too small: send a larger one (at least {2 * SMALL_PHOTO_SIDE} px on its shorter side) with a clearly visible face"
    return "use a photo with a clearly visible, roughly frontal face, not covered and not too dark"


def detect_landmarks(
    image: np.ndarray,
    backend: Backend = "mediapipe",
    policy: Policy = "largest",
    *,
    min_face_size: float = DEFAULT_MIN_FACE_SIZE,
    max_faces: int = 8,
    detect_size: int = DEFAULT_DETECT_SIZE,
) -> list[Face]:
    """Find faces and their landmarks in an ``(H, W, 3)`` uint8 RGB photo.

    ``policy='largest'`` returns a one-element list with the largest face; ``'all'`` returns up to
    ``max_faces`` faces, largest first, leaving out those smaller than ``min_face_size``.

    Raises :class:`NoFaceError` when no face is found, and :class:`FaceTooSmallError` when every
    face found is smaller than ``min_face_size`` (see :attr:`Face.size`).
    """
    image = check_rgb(image)
    if policy not in POLICIES:
        raise ValueError(f"unknown face policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    if max_faces < 1:
        raise ValueError(f"max_faces must be at least 1, got {max_faces}")
    if detect_size < 64:
        raise ValueError(f"detect_size must be at least 64 pixels, got {detect_size}")
    impl = _get_backend(backend)
    h, w = image.shape[:2]
    small, fx, fy = downscale_longest(image, detect_size)

    with impl.lock:  # neither back-end's models may be used from two threads at once
        candidates = impl.detect(small, fx, fy)
        candidates.sort(key=lambda c: (c[0][2] - c[0][0]) * (c[0][3] - c[0][1]), reverse=True)
        faces: list[Face] = []
        for box, score in candidates[:max_faces]:
            face = impl.landmarks(image, small, fx, fy, box, score)
            if face is not None:
                faces.append(face)
                if policy == "largest":
                    break

    if not faces:
        raise NoFaceError(f"no face found in the {w}x{h} photo (back-end {backend!r}); {_no_face_hint(w, h)}")
    faces.sort(key=lambda f: f.size, reverse=True)
    large = [f for f in faces if f.size >= min_face_size]
    if not large:
        sizes = ", ".join(f"{f.size:.0f}" for f in faces)
        raise FaceTooSmallError(
            f"face too small: found {len(faces)} face(s) of size {sizes} px (larger of eye-to-eye and "
            f"eye-to-mouth distance) in the {w}x{h} photo, below the minimum of {min_face_size:.0f} px; "
            "use a photo where the face is larger (closer, or cropped around the face), or lower min_face_size"
        )
    return large
