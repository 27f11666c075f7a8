"""The served Triton model repository: its layout (:mod:`.layout`), how styles go in and out of it
(:mod:`.repository`), and how a running server follows it (:mod:`.control`)."""

from cptr.triton.control import ControlError, SyncResult, loaded_versions, sync
from cptr.triton.layout import INDEX_FILE, LayoutError, manifest_path, read_index, read_manifest
from cptr.triton.repository import Published, publish, remove

__all__ = [
    "INDEX_FILE",
    "ControlError",
    "LayoutError",
    "Published",
    "SyncResult",
    "loaded_versions",
    "manifest_path",
    "publish",
    "read_index",
    "read_manifest",
    "remove",
    "sync",
]
