"""``cptr ui``: a web page (Gradio) that is a client of a running CPTR Triton server.

Needs the ``[ui]`` extra (``pip install -e ".[ui]"``). :func:`build_app` makes the page,
:func:`serve_ui` runs it (optionally with its own server, ``serve=REPO``); the requests and their
plain-words errors are in :mod:`cptr.ui.backend`, which does not need Gradio.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_app", "serve_ui"]


def __getattr__(name: str) -> Any:  # gradio is imported only when the page is built
    if name in __all__:
        from cptr.ui import app  # gradio: only when the page is built

        return getattr(app, name)
    raise AttributeError(name)
