"""Atomic artifact writes: complete or absent, with ordinary permissions."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cptr.io import atomic_directory, atomic_path, atomic_write_bytes, atomic_write_text, sha256_file


@pytest.fixture(autouse=True)
def _umask_022(monkeypatch: pytest.MonkeyPatch) -> None:
    import cptr.io

    monkeypatch.setattr(cptr.io, "_UMASK", 0o022)  # the umask cptr.io read at import


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_file_keeps_old_content_on_failure_and_gets_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    atomic_write_text(target, "v1")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert _mode(target) == 0o644  # umask 022 set by the fixture, not mkstemp's 0600


def test_atomic_bytes_take_a_buffer_and_hash_like_hashlib(tmp_path: Path) -> None:
    import hashlib

    data = bytes(range(256)) * 5000  # over one 1 MiB hashing chunk
    target = tmp_path / "model.plan"
    atomic_write_bytes(target, memoryview(data))  # TensorRT hands plans over as a buffer
    assert target.read_bytes() == data
    assert _mode(target) == 0o644
    assert sha256_file(target) == hashlib.sha256(data).hexdigest()


def test_atomic_directory_swaps_whole_tree(tmp_path: Path) -> None:
    repo = tmp_path / "triton_repo"
    with atomic_directory(repo) as tmp:
        (tmp / "a").mkdir()
        (tmp / "a" / "config.pbtxt").write_text("one")
    assert (repo / "a" / "config.pbtxt").read_text() == "one"
    assert _mode(repo) == 0o755  # not mkdtemp's 0700
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(repo) as tmp:
            (tmp / "b").mkdir()
            raise KeyboardInterrupt
    assert [p.name for p in repo.iterdir()] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["triton_repo"]


def test_atomic_directory_failure_between_the_two_renames_keeps_the_previous_tree(tmp_path: Path, monkeypatch) -> None:
    """The swap is two renames (old tree aside, new tree in). A failure of the second (a full disk, a signal)
    puts the previous tree back: same files, no temporary folder left."""
    import os

    repo = tmp_path / "triton_repo"
    with atomic_directory(repo) as tmp:
        (tmp / "old.txt").write_text("previous")
    real_replace, calls = os.replace, []

    def failing_second(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_second)
    with pytest.raises(OSError, match="No space left"):
        with atomic_directory(repo) as tmp:
            (tmp / "new.txt").write_text("new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert len(calls) == 3  # aside, in (failed), back
    assert sorted(p.name for p in repo.iterdir()) == ["old.txt"] and (repo / "old.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["triton_repo"]
