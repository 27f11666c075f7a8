"""Python client of the CPTR Triton server: ``CartoonClient`` (blocking) and ``AsyncCartoonClient``.

See :mod:`cptr.client.client` for usage; errors are in :mod:`cptr.client.errors`.
"""

from cptr.client.client import AsyncCartoonClient, CartoonClient, FaceCartoons, ModelInfo, encode_image, parse_mix, parse_seeds
from cptr.client.errors import (
    BadImageError,
    BadRequestError,
    CartoonError,
    FaceTooSmallError,
    ImageTooLargeError,
    NoFaceError,
    RequestTimeoutError,
    ServerError,
    ServerUnavailableError,
    TooManyFacesError,
    UnknownStyleError,
)

__all__ = [
    "AsyncCartoonClient",
    "BadImageError",
    "BadRequestError",
    "CartoonClient",
    "CartoonError",
    "FaceCartoons",
    "FaceTooSmallError",
    "ImageTooLargeError",
    "ModelInfo",
    "NoFaceError",
    "RequestTimeoutError",
    "ServerError",
    "ServerUnavailableError",
    "TooManyFacesError",
    "UnknownStyleError",
    "encode_image",
    "parse_mix",
    "parse_seeds",
]
