"""Large-scale saliency generation: ``fastcam.generate(...)`` / ``fastcam generate``.

Maps for a whole image collection go into one chunked, compressed Zarr store
that a re-run resumes and any number of ``torchrun`` processes fill together::

    fastcam generate --images DIR --method gradcam --out maps.zarr
    torchrun --nproc_per_node=4 -m fastcam generate --images DIR --method gradcam --out maps.zarr
    # several machines (the store and the images must be reachable from all of them):
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \
        --rdzv-id=job1 -m fastcam generate --images /shared/DIR --out s3://bucket/maps.zarr ...

Re-running the same command skips what is done, with any number of processes.
See :func:`generate` for the arguments and :mod:`fastcam.generation.store` for
the layout. A run is :mod:`.config` (what identifies it) -> :mod:`.plan` (the
chunks to do) -> :mod:`.compute` (one chunk, no I/O) -> the store's commit ->
:mod:`.summary`, driven by :mod:`.run` over :mod:`.distributed` ranks;
:mod:`.dataset` lists and decodes the images, :mod:`.fingerprint` records what
each image file was (a resume recomputes changed images and missing chunks),
:mod:`.verify` checks a store (``--verify``); the command line is
:mod:`fastcam.apps.generate`, which calls this package.
(``fastcam.generate`` is the function; the submodules are
``fastcam.generation.store`` etc.)
"""
from ..errors import UsageError
from .dataset import IMAGE_EXTENSIONS, list_images
from .run import generate
from .store import STATUS_DONE, STATUS_FAILED, STATUS_PENDING, SaliencyStore, read_store
from .summary import GenerateSummary

#: what :func:`generate` raises on a usage error (:class:`fastcam.errors.UsageError`)
GenerateError = UsageError

__all__ = ["generate", "GenerateSummary", "GenerateError", "SaliencyStore", "read_store", "list_images",
           "IMAGE_EXTENSIONS", "STATUS_PENDING", "STATUS_DONE", "STATUS_FAILED"]
