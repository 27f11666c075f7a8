"""Exceptions raised by :class:`cptr.client.CartoonClient`, mapped from the server's answers.

The server's Python models prefix their errors with a stable code (``[no_face] ...``, see
:mod:`cptr.contracts`); Triton's own refusals (unknown model, wrong dtype or shape) and
transport failures are recognised by their status.
"""

from __future__ import annotations

from cptr import contracts as codes


class CartoonError(Exception):
    """Base class of every client error. ``code`` is the server's stable code, when it sent one."""

    code: str | None = None

    def __init__(self, message: str, *, model: str | None = None, status: str | None = None):
        super().__init__(message)
        self.model = model
        self.status = status


class ServerError(CartoonError):
    """The server failed on a valid request (a bug or a broken model on the server side)."""

    code = codes.INTERNAL


class BadRequestError(CartoonError, ValueError):
    """The request was refused: wrong dtype, shape, value range or batch size."""

    code = codes.BAD_REQUEST


class BadImageError(BadRequestError):
    """The bytes are empty, corrupted, or not an image in a supported format."""

    code = codes.BAD_IMAGE


class ImageTooLargeError(BadImageError):
    """The photo has too many bytes or pixels (see cptr.contracts.MAX_IMAGE_BYTES / MAX_IMAGE_PIXELS)."""

    code = codes.IMAGE_TOO_LARGE


class NoFaceError(BadRequestError):
    """No face was found in the photo."""

    code = codes.NO_FACE


class FaceTooSmallError(NoFaceError):
    """Faces were found, but all are too small to align well."""

    code = codes.FACE_TOO_SMALL


class TooManyFacesError(BadRequestError):
    """The photo has more faces than a request may cartoonize (cptr.contracts.MAX_FACES_PER_PHOTO); crop it, or
    cartoonize its largest face only (``largest=True``)."""

    code = codes.TOO_MANY_FACES


class UnknownStyleError(CartoonError, LookupError):
    """The server has no model for this style (or style + prompt)."""


class ServerUnavailableError(CartoonError, ConnectionError):
    """The server could not be reached (after the configured retries)."""


class RequestTimeoutError(CartoonError, TimeoutError):
    """The server did not answer within the client's timeout."""


BY_CODE: dict[str, type[CartoonError]] = {
    cls.code: cls
    for cls in (ServerError, BadRequestError, BadImageError, ImageTooLargeError, NoFaceError, FaceTooSmallError, TooManyFacesError)
}
