"""Workloads for the stages beyond the generator: encoder, mapper, align and the whole pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BUILDERS: dict[str, Callable[[str, int], Any]] = {}
