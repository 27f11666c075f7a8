"""Server-side errors: the exception a model raises for a refused request, and its stable code.

A Python-backend model answers a bad request with a message that starts with ``[<code>] ``; the
client parses that prefix (even when Triton wraps the message, e.g. inside an ensemble) and raises
the matching exception class. The codes and that wire form are part of :mod:`cptr.contracts`.
"""

from __future__ import annotations

from cptr.contracts import (  # the codes and their wire form are part of the contract with the client
    BAD_IMAGE,
    BAD_REQUEST,
    ERROR_CODES,
    FACE_TOO_SMALL,
    IMAGE_TOO_LARGE,
    INTERNAL,
    NO_FACE,
    TOO_MANY_FACES,
    format_error,
    parse_error,
)

CODES = ERROR_CODES
__all__ = [
    "BAD_IMAGE",
    "BAD_REQUEST",
    "CODES",
    "FACE_TOO_SMALL",
    "IMAGE_TOO_LARGE",
    "INTERNAL",
    "NO_FACE",
    "TOO_MANY_FACES",
    "RequestError",
    "error_code",
    "format_error",
    "parse_error",
]


class RequestError(ValueError):
    """A request the server refuses, with its stable ``code``."""

    def __init__(self, code: str, message: str):
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}; known: {', '.join(CODES)}")
        super().__init__(message)
        self.code = code


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
