"""Stable error codes shared by the server-side models and the client.

A Python-backend model answers a bad request with a message that starts with ``[<code>] ``; the
client parses that prefix (even when Triton wraps the message, e.g. inside an ensemble) and raises
the matching exception class. Codes never change meaning; add new ones rather than reuse.
"""

from __future__ import annotations

import re

BAD_REQUEST = "bad_request"  # wrong dtype, shape, value range, batch size, non-finite values
BAD_IMAGE = "bad_image"  # empty, corrupted or non-image bytes
IMAGE_TOO_LARGE = "image_too_large"  # over MAX_IMAGE_BYTES or MAX_IMAGE_PIXELS
NO_FACE = "no_face"
FACE_TOO_SMALL = "face_too_small"
INTERNAL = "internal"  # a bug or a broken model file on the server: not the caller's fault

CODES = (BAD_REQUEST, BAD_IMAGE, IMAGE_TOO_LARGE, NO_FACE, FACE_TOO_SMALL, INTERNAL)

_PREFIX = re.compile(r"\[(" + "|".join(CODES) + r")\]\s*")


class RequestError(ValueError):
    """A request the server refuses, with its stable ``code``."""

    def __init__(self, code: str, message: str):
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}; known: {', '.join(CODES)}")
        super().__init__(message)
        self.code = code


def format_error(code: str, message: str) -> str:
    """The wire form of an error: ``[code] message``."""
    return f"[{code}] {message}"


def parse_error(text: str) -> tuple[str | None, str]:
    """Find ``[code] message`` anywhere in ``text`` (Triton may prepend its own context)."""
    m = _PREFIX.search(text or "")
    if m is None:
        return None, text
    return m.group(1), text[m.end() :].strip()


def error_code(exc: BaseException) -> str:
    """Map an exception raised while serving a request to its stable code."""
    if isinstance(exc, RequestError):
        return exc.code
    try:  # the align errors are only importable where the [align] extra is installed
        from cptr.align.errors import BadImageError, FaceTooSmallError, ImageTooLargeError, NoFaceError
    except ImportError:  # pragma: no cover
        return INTERNAL
    for cls, code in (
        (ImageTooLargeError, IMAGE_TOO_LARGE),
        (BadImageError, BAD_IMAGE),
        (FaceTooSmallError, FACE_TOO_SMALL),
        (NoFaceError, NO_FACE),
    ):
        if isinstance(exc, cls):
            return code
    return INTERNAL
