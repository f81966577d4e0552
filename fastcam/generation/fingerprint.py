"""Per-image content fingerprints of ``fastcam generate``: what the store records
next to each map so that a resume or ``--verify`` sees an image that changed.

* ``stat`` (default): what the listing saw: ``SIZE:MTIME_NS`` of a local file,
  an object's ETag (or size and modification time) on object storage, a tar
  member's size and mtime; no read. Misses a rewrite that keeps all of them.
* ``sha256``: the hash of the bytes read (each computed image is read once more
  on resume).

An unreadable or missing image has the fingerprint ``""``.
"""
from __future__ import annotations

import hashlib
from typing import Optional, Sequence

from ..errors import UsageError
from .manifest import Manifest, read_bytes

#: the fingerprint kinds (``--fingerprint``)
FINGERPRINTS = ("stat", "sha256")


def check_kind(kind: str) -> str:
    if kind not in FINGERPRINTS:
        raise UsageError(f"--fingerprint {kind!r}: choose from {list(FINGERPRINTS)}")
    return kind


def current_fingerprints(manifest: Manifest, rows: Sequence[int], kind: str,
                         storage_options: Optional[dict] = None) -> dict[int, str]:
    """Row -> the ``kind`` fingerprint of its image now (``manifest``: a fresh listing)."""
    if kind != "sha256":
        return {i: manifest.fingerprints[i] for i in rows}
    out = {}
    for i in rows:
        try:
            out[i] = "sha256:" + hashlib.sha256(read_bytes(manifest.uris[i], storage_options)).hexdigest()
        except Exception:  # noqa: BLE001 - unreadable: "" (differs from any recorded hash)
            out[i] = ""
    return out
