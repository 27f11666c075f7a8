"""Bring a running Triton server in line with its repository (explicit model control).

:func:`sync` compares the models the repository's index wants, at their newest version on disk,
with what the server has loaded (``GET /v2/models/stats``), then:

- loads each changed or new model, composing models before the ensembles that call them. Triton
  loads the new version beside the old one, switches to it, and unloads the old one once its
  requests have finished: no request fails;
- unloads the models no style uses any more, ensembles first.

The server must run with ``--model-control-mode=explicit`` (``cptr serve`` does).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cptr import contracts
from cptr.triton.layout import INDEX_FILE, LayoutError, latest_version, read_config, read_index, served_models

LOAD_TIMEOUT_S = 600.0


class ControlError(RuntimeError):
    """The server refused a load or unload, or could not be reached."""


@dataclass
class SyncResult:
    loaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.loaded or self.unloaded)

    def describe(self) -> str:
        parts = []
        if self.loaded:
            parts.append(f"loaded {', '.join(self.loaded)}")
        if self.unloaded:
            parts.append(f"unloaded {', '.join(self.unloaded)}")
        return "; ".join(parts) or "nothing to change"


def _base(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else f"http://{url}"


def _call(url: str, path: str, body: dict[str, Any] | None = None, timeout: float = LOAD_TIMEOUT_S) -> bytes:
    """POST ``body`` (GET without one) to the server's ``path``; errors become :class:`ControlError`."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        _base(url) + path, data=data, method="GET" if body is None else "POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail).get("error", detail)
        except json.JSONDecodeError:
            pass
        raise ControlError(f"{path}: HTTP {e.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ControlError(f"cannot reach the Triton server at {url} ({e}); is it running (cptr serve)?") from None


def loaded_versions(url: str) -> dict[str, int]:
    """``{model: newest loaded version}`` on the server at ``url`` (host:port or http URL).

    Read from the statistics endpoint, which lists every loaded model, also one whose folder is
    already deleted (the repository index lists only folders that exist).
    """
    stats = json.loads(_call(url, "/v2/models/stats", timeout=30) or b"{}")
    out: dict[str, int] = {}
    for row in stats.get("model_stats", []):
        if str(row.get("version", "")).isdigit():
            out[row["name"]] = max(out.get(row["name"], 0), int(row["version"]))
    return out


def load(url: str, model: str) -> None:
    _call(url, f"/v2/repository/models/{model}/load", {})


def unload(url: str, model: str) -> None:
    _call(url, f"/v2/repository/models/{model}/unload", {"parameters": {"unload_dependents": False}})


def sync(url: str, repo: Path, log: Callable[[str], None] | None = None) -> SyncResult:
    """Make the server at ``url`` serve what ``repo``'s index lists (see the module docstring)."""
    repo = Path(repo)
    wanted = served_models(read_index(repo))
    have = loaded_versions(url)
    result = SyncResult()
    stale = [m for m in wanted if (repo / m).is_dir() and have.get(m) != latest_version(repo / m)]
    for model in sorted(stale, key=lambda m: (read_config(repo / m).is_ensemble, m)):
        load(url, model)
        result.loaded.append(model)
        if log:
            log(f"loaded {model} (version {latest_version(repo / model)})")
    gone = [m for m in have if m not in wanted]
    ensembles = set(contracts.public_models(gone))  # by name: their folders may be deleted already
    for model in sorted(gone, key=lambda m: (m not in ensembles, m)):
        unload(url, model)
        result.unloaded.append(model)
        if log:
            log(f"unloaded {model}")
    return result


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def watch(url: str, repo: Path, stop: threading.Event, log: Callable[[str], None], interval_s: float = 0.5) -> None:
    """Until ``stop`` is set: :func:`sync` whenever the index of ``repo`` changes (a new, re-exported or
    removed style; :func:`cptr.triton.repository` writes the index last). A failed sync is logged and retried."""
    index = Path(repo) / INDEX_FILE
    seen = _stamp(index)
    pending = False
    while not stop.wait(interval_s):
        now = _stamp(index)
        if now != seen or pending:
            seen = now
            try:
                done = sync(url, repo)
                pending = False
            except (ControlError, LayoutError, OSError, ValueError) as e:
                log(f"could not switch to the repository's new contents: {e} (retrying)")
                pending = True
                continue
            if done:
                styles = ", ".join(sorted(read_index(repo))) or "none"
                log(f"repository changed: {done.describe()}; styles now served: {styles}")
