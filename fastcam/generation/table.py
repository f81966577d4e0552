"""The per-chunk Parquet table of a store (``images/part-NNNNN.parquet``): one
row per store row, readable by pandas, DuckDB or pyarrow without fastcam.

Columns (:data:`COLUMNS`): ``row`` (the index into the store's arrays),
``image_id``, ``uri`` (as the manifest records it, credentials removed),
``fingerprint`` (the listing's), ``status`` (``done`` | ``failed``), ``error``,
``target`` (the class explained) with its ``target_logit`` and
``target_probability`` (softmax), ``predicted`` with ``predicted_probability``,
the original ``height``/``width``, the ``crop_x0 crop_y0 crop_x1 crop_y1``
box in original pixels that the map covers (:func:`.decode.crop_box`), the
row's ``seconds`` (reading and decoding it plus its share of the chunk's
compute) and the ``device``. The file's key-value metadata ``fastcam`` holds
the store's attributes (JSON).
"""
from __future__ import annotations

import io
import json
from typing import Optional

import numpy as np

from .decode import crop_box

#: the table's columns, in order
COLUMNS = ("row", "image_id", "uri", "fingerprint", "status", "error", "target", "target_logit",
           "target_probability", "predicted", "predicted_probability", "height", "width",
           "crop_x0", "crop_y0", "crop_x1", "crop_y1", "seconds", "device")
#: columns that differ between two runs computing the same rows
RUN_COLUMNS = ("seconds", "device")


def have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def chunk_table(*, rows: range, ids: list, uris: list, fingerprints: list, result, heights: np.ndarray,
                widths: np.ndarray, seconds: np.ndarray, size: int, preprocess: str, device: str,
                metadata: Optional[dict] = None) -> bytes:
    """The Parquet bytes of one chunk's table (``result``: its
    :class:`~.compute.ChunkResult`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(rows)
    boxes = np.full((n, 4), np.nan)
    for j in range(n):
        if heights[j] > 0:
            boxes[j] = crop_box(int(heights[j]), int(widths[j]), size, preprocess)
    status = np.where(result.status == 1, "done", "failed")
    cols = {
        "row": pa.array(np.arange(rows.start, rows.stop, dtype=np.int64)),
        "image_id": pa.array(list(ids), pa.string()),
        "uri": pa.array(list(uris), pa.string()),
        "fingerprint": pa.array(list(fingerprints), pa.string()),
        "status": pa.array(status.tolist(), pa.string()),
        "error": pa.array(list(result.error), pa.string()),
        "target": pa.array(result.target.astype(np.int32)),
        "target_logit": pa.array(result.target_logit.astype(np.float32)),
        "target_probability": pa.array(result.target_probability.astype(np.float32)),
        "predicted": pa.array(result.predicted.astype(np.int32)),
        "predicted_probability": pa.array(result.probability.astype(np.float32)),
        "height": pa.array(np.asarray(heights, dtype=np.int32)),
        "width": pa.array(np.asarray(widths, dtype=np.int32)),
        **{f"crop_{k}": pa.array(boxes[:, i]) for i, k in enumerate(("x0", "y0", "x1", "y1"))},
        "seconds": pa.array(np.asarray(seconds, dtype=np.float64)),
        "device": pa.array([device] * n, pa.string()),
    }
    table = pa.Table.from_arrays(list(cols.values()), names=list(cols))     # (pa.table imports pandas)
    if metadata is not None:
        table = table.replace_schema_metadata({"fastcam": json.dumps(metadata, sort_keys=True)})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()
