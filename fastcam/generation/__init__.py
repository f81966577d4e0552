"""Large-scale saliency generation: ``fastcam.generate(...)`` / ``fastcam generate``.

Maps for a whole image collection go into one chunked, compressed Zarr store
that a re-run resumes and any number of ``torchrun`` processes fill together::

    fastcam generate --images DIR --method gradcam --out maps.zarr
    torchrun --nproc_per_node=4 -m fastcam generate --images DIR --method gradcam --out maps.zarr
    # several machines (the store and the images must be reachable from all of them):
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \
        --rdzv-id=job1 -m fastcam generate --images /shared/DIR --out s3://bucket/maps.zarr ...

    # independent processes (a SLURM array: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT):
    fastcam generate --images s3://bucket/val/ --out s3://bucket/maps.zarr --shard 0/2 --steal

Re-running the same command skips what is done, with any number of processes.
The public chunk protocol is :func:`prepare` / :func:`run_chunks` /
:func:`finalize` (:mod:`.protocol`): the store is the only coordinator, and
:mod:`.run`'s executors (local, torchrun, ``--shard``, Ray in
:mod:`.ray_executor`) only choose who runs which chunk. :mod:`.manifest` lists
the inputs (folders, lists and URLs through fsspec, WebDataset tars, Parquet
tables), :mod:`.decode` decodes in uint8, :mod:`.config` is what identifies a
run, :mod:`.compute` one chunk (no I/O), :mod:`.store` the layout and its
commits, :mod:`.table` the per-chunk Parquet table, :mod:`.fingerprint` what
each image was (a resume recomputes changed images and missing chunks),
:mod:`.verify` checks a store (``--verify``); the command line is
:mod:`fastcam.apps.generate`, which calls this package.
(``fastcam.generate`` is the function; the submodules are
``fastcam.generation.store`` etc.)
"""
from ..errors import UsageError
from .dataset import IMAGE_EXTENSIONS, list_images
from .protocol import ChunkCounts, GenerateConfig, Prepared, finalize, prepare, run_chunks
from .run import generate
from .store import STATUS_DONE, STATUS_FAILED, STATUS_PENDING, SaliencyStore, read_store
from .summary import GenerateSummary

#: what :func:`generate` raises on a usage error (:class:`fastcam.errors.UsageError`)
GenerateError = UsageError

__all__ = ["generate", "prepare", "run_chunks", "finalize", "GenerateConfig", "Prepared", "ChunkCounts",
           "GenerateSummary", "GenerateError", "SaliencyStore", "read_store", "list_images",
           "IMAGE_EXTENSIONS", "STATUS_PENDING", "STATUS_DONE", "STATUS_FAILED"]
