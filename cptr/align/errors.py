"""Errors raised by face alignment. Every one is a ``ValueError`` (via :class:`AlignError`)."""

from __future__ import annotations

ALIGN_EXTRA_HINT = "install it with: pip install 'cptr[align]'"


class AlignError(ValueError):
    """Base class: the photo cannot be turned into an aligned face crop."""


class BadImageError(AlignError):
    """The bytes are empty, corrupted, or not an image in a supported format."""


class ImageTooLargeError(AlignError):
    """The image declares more pixels than allowed (decompression-bomb guard)."""


class NoFaceError(AlignError):
    """No face was found in the photo."""


class FaceTooSmallError(AlignError):
    """Faces were found, but all of them are too small to align well."""


class MissingBackendError(AlignError, ImportError):
    """The requested landmark back-end is not installed."""
