"""Triton serving: the model repository writer, the Python-backend models and the server launcher.

- :func:`cptr.triton.writer.write_repository` turns an export bundle into a repository;
- :class:`cptr.serving.server.TritonServer` runs the bundled tritonserver (``cptr serve``);
- :mod:`cptr.serving.models` holds the Python-backend model code (imported by the repository).
"""

from __future__ import annotations

from typing import Any

from cptr.serving.server import TritonServer
from cptr.triton.writer import write_repository

__all__ = ["TritonServer", "write_repository"]


def __getattr__(name: str) -> Any:  # lazy: importing cptr.serving stays cheap
    if name == "write_repository":
        return write_repository
    if name == "TritonServer":
        return TritonServer
    raise AttributeError(name)
