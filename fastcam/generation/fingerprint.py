"""Per-image content fingerprints of ``fastcam generate``: what the store records
next to each map so that a resume or ``--verify`` sees an image that changed.

* ``stat`` (default): ``SIZE:MTIME_NS`` of the file, no read; misses a rewrite
  that keeps both the size and the modification time.
* ``sha256``: the hash of the file's bytes (reads every image once more).

An unreadable or missing file has the fingerprint ``""``.
"""
from __future__ import annotations

import os
from typing import Sequence

from ..errors import UsageError
from ..models.loading import sha256_file
from .dataset import ImageList

#: the fingerprint kinds (``--fingerprint``)
FINGERPRINTS = ("stat", "sha256")


def check_kind(kind: str) -> str:
    if kind not in FINGERPRINTS:
        raise UsageError(f"--fingerprint {kind!r}: choose from {list(FINGERPRINTS)}")
    return kind


def fingerprint(path: str, kind: str) -> str:
    """The ``kind`` fingerprint of the file at ``path`` (``""`` when it cannot be read)."""
    try:
        if kind == "sha256":
            return "sha256:" + sha256_file(path)
        st = os.stat(path)
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return ""


def fingerprints(images: ImageList, indices: Sequence[int], kind: str) -> list[str]:
    """The fingerprints of images ``indices`` of ``images``."""
    return [fingerprint(images.full_path(int(i)), kind) for i in indices]
