"""``fastcam generate``: saliency maps for a whole image collection into one
resumable Zarr store, on one process or many (``torchrun``).

Flow: rank 0 lists the images (sorted), loads the model, resolves the layer
and the method's options, and creates the store or checks that it was made
by the same arguments; it sends the list of chunks still to do to every rank
(``torch.distributed`` when ``WORLD_SIZE`` > 1: gloo on CPU, nccl on GPU).
Rank ``r`` of ``W`` computes pending chunks ``r, r+W, r+2W, ...``: a DataLoader
decodes them in worker processes while the model runs, a writer thread
compresses and writes finished chunks while the next one is computed. A
barrier ends the run; rank 0 records completion and prints the summary.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import inspect
import json
import os
import queue
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .dataset import (GenerateError, ImageDataset, ImageList, ImagesSpec, chunk_loader, list_images,
                      read_targets)
from .store import FORMAT, STATUS_DONE, STATUS_FAILED, SaliencyStore

BUNDLED = "efficientnet_lite0"
DTYPES = {"float16": torch.float16, "float32": torch.float32}


# -- summary ---------------------------------------------------------------------
@dataclass
class GenerateSummary:
    """What a run did (same on every rank)."""

    store: str
    n_images: int            # images in the store
    done: int                # with a map, in the whole store
    failed: int              # recorded as failed, in the whole store
    pending: int             # not yet computed (0 when the store is complete)
    computed: int            # images this run processed (all ranks)
    computed_failed: int     # of which failed
    skipped: int             # images already done before this run
    seconds: float           # wall time of the compute loop (all ranks, to the final barrier)
    world_size: int
    failures: list = field(default_factory=list)   # up to 10 (path, error) from the store

    @property
    def images_per_s(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else float("nan")

    def format(self) -> str:
        lines = [f"fastcam generate: {self.computed} image(s) in {self.seconds:.1f} s "
                 f"({self.images_per_s:.1f} images/s) on {self.world_size} process(es)",
                 f"  this run: {self.computed - self.computed_failed} done, {self.computed_failed} "
                 f"failed; {self.skipped} already in the store (skipped)",
                 f"  store {self.store}: {self.n_images} images, {self.done} done, {self.failed} failed, "
                 f"{self.pending} pending" + (" (complete)" if self.pending == 0 else "")]
        for path, err in self.failures[:5]:
            lines.append(f"  failed: {path}: {err}")
        if self.failed > min(5, len(self.failures)):
            lines.append(f"  ... {self.failed - min(5, len(self.failures))} more failed "
                         "(the store's status/error arrays list them)")
        return "\n".join(lines)


# -- distributed -------------------------------------------------------------------
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def active(self) -> bool:
        return self.world > 1

    def broadcast(self, obj: Any) -> Any:
        if not self.active:
            return obj
        box = [obj if self.rank == 0 else None]
        torch.distributed.broadcast_object_list(box, src=0,
                                                device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def sum(self, values: Sequence[int]) -> list[int]:
        if not self.active:
            return [int(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return [int(round(v)) for v in t.tolist()]

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def _init_distributed(device: Union[str, torch.device, None]) -> _Dist:
    want = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(device=want)
    import torch.distributed as dist

    if not dist.is_available():
        raise GenerateError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if want.type == "cuda":
        want = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(want)
    owns = False
    if not dist.is_initialized():
        # ranks wait for each other only at the start and at the final barrier;
        # shards are balanced but a long run may still end at different times
        timeout = timedelta(seconds=float(os.environ.get("FASTCAM_DIST_TIMEOUT", 7 * 24 * 3600)))
        dist.init_process_group("nccl" if want.type == "cuda" else "gloo", timeout=timeout)
        owns = True
    return _Dist(dist.get_rank(), dist.get_world_size(), want, owns)


# -- model, layer, method ------------------------------------------------------------
def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _sha256_state(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()


def _read_state_dict(weights: str) -> dict:
    if not os.path.isfile(weights):
        raise GenerateError(f"--weights {weights!r}: no such file")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise GenerateError(f"--weights {weights!r}: not a readable state dict ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GenerateError(f"--weights {weights!r}: expected a state dict (name -> tensor)")
    if state and all(k.startswith("module.") for k in state):    # saved from DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _load_state(model: nn.Module, state: dict, weights: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        missing = sorted(set(model.state_dict()) - set(state))
        unexpected = sorted(set(state) - set(model.state_dict()))
        detail = (f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                  f"(e.g. {unexpected[:2]})") if missing or unexpected else \
            str(e).splitlines()[-1].strip()[:200]
        raise GenerateError(f"--weights {weights!r} does not match the model: {detail}") from None


def load_model(model: Union[str, nn.Module], weights: Optional[str] = None, *, hash_weights: bool = True
               ) -> tuple[nn.Module, str, Any, Optional[tuple]]:
    """(module in eval mode, model name, weights record, the model's own normalisation or None)."""
    if isinstance(model, nn.Module):
        if weights is not None:
            _load_state(model, _read_state_dict(os.fspath(weights)), os.fspath(weights))
        record = {"sha256": _sha256_state(model)} if hash_weights else None
        return model.eval(), f"module:{type(model).__name__}", record, getattr(model, "normalization", None)
    name = str(model)
    if name == BUNDLED:
        from ..models import efficientnet_lite0

        if weights is None:
            net = efficientnet_lite0(pretrained=True)
            record: Any = "bundled"
        else:
            net = efficientnet_lite0(pretrained=False)
            _load_state(net, _read_state_dict(os.fspath(weights)), os.fspath(weights))
            record = {"file": os.path.basename(weights), "sha256": _sha256_file(weights) if hash_weights else None}
        return net.eval(), BUNDLED, record, tuple(tuple(v) for v in net.normalization)
    if name.startswith("torchvision:"):
        import torchvision

        arch = name.split(":", 1)[1]
        ctor = getattr(torchvision.models, arch, None)
        if arch.startswith("_") or not callable(ctor):
            raise GenerateError(f"--model {name!r}: torchvision.models has no model {arch!r}")
        state = _read_state_dict(os.fspath(weights)) if weights is not None else None
        kwargs: dict = {"weights": None}
        if state is not None:     # a classifier trained on other classes: size the last layer
            last = [v for k, v in state.items() if k.endswith(".weight") and v.dim() == 2]
            if last:
                kwargs["num_classes"] = int(last[-1].shape[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)   # the same random init on every rank when no weights are given
            try:
                net = ctor(**kwargs)
            except TypeError:
                kwargs.pop("num_classes", None)
                net = ctor(**kwargs)
        if state is None:
            warnings.warn(f"--model {name}: no --weights given, the model has random weights "
                          "(seeded, the same on every rank)", stacklevel=3)
            record = None
        else:
            _load_state(net, state, os.fspath(weights))
            record = {"file": os.path.basename(weights), "sha256": _sha256_file(weights) if hash_weights else None}
        return net.eval(), name, record, None
    raise GenerateError(f"--model {name!r}: use {BUNDLED!r} (bundled, pretrained) or 'torchvision:NAME' "
                        "with --weights FILE")


def resolve_layer(model: nn.Module, layer: Optional[str], size: int, bundled: bool) -> str:
    """The target layer's dotted name (default: the bundled model's ``_head_act``,
    else the last spatial layer found by a dry run)."""
    from ..network.layers import find_spatial_layer, resolve_layers

    if layer is None:
        if bundled:
            return "_head_act"
        with torch.no_grad():
            module = find_spatial_layer(model, torch.zeros(1, 3, size, size,
                                                            device=next(model.parameters()).device))
        return next(n for n, m in model.named_modules() if m is module)
    try:
        resolve_layers(model, [layer])
    except ValueError as e:
        raise GenerateError(f"--layer: {e}") from None
    return layer


def method_spec(method: str, options: Optional[dict]) -> tuple[str, type, dict]:
    """(canonical name, class, every keyword option with its effective value)."""
    from ..methods import METHODS

    cls = METHODS.get(str(method).lower())
    if cls is None:
        raise GenerateError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
    canonical = next(k for k, v in METHODS.items() if v is cls)
    params = {n: p for n, p in inspect.signature(cls.__init__).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "normalize"}
    options = dict(options or {})
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise GenerateError(f"method {canonical!r} has no option(s) {unknown}; options: {sorted(params)}")
    full = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
    full.update(options)
    try:
        full = json.loads(json.dumps(full, sort_keys=True))
    except TypeError as e:
        raise GenerateError(f"method options must be JSON values (numbers, strings, lists): {e}") from None
    return canonical, cls, full


def _build_cam(cls: type, model: nn.Module, layer: str, normalize, options: dict):
    try:
        return cls(model, [layer], normalize=normalize, **options)
    except (ValueError, TypeError) as e:
        raise GenerateError(f"method options: {e}") from None


def resolve_normalize(normalize, own: Optional[tuple]):
    """"auto" -> the model's own (mean, std), else ImageNet's; None; or (mean, std), as float tuples."""
    from ..data import IMAGENET_MEAN, IMAGENET_STD

    if isinstance(normalize, str):
        if normalize != "auto":
            raise GenerateError(f"normalize must be 'auto', None or (mean, std), got {normalize!r}")
        normalize = own if own is not None else (IMAGENET_MEAN, IMAGENET_STD)
    if normalize is None:
        return None
    mean, std = normalize
    return (tuple(float(v) for v in mean), tuple(float(v) for v in std))


# -- the writer --------------------------------------------------------------------
class _ChunkWriter:
    """Writes finished chunks on a thread so compression and I/O overlap the
    next chunk's compute; at most ``depth`` chunks wait (bounded memory)."""

    def __init__(self, store: SaliencyStore, depth: int = 2):
        self.store = store
        self.queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._work, name="fastcam-writer", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self.store.write_chunk(item[0], **item[1])
                except BaseException as e:  # noqa: BLE001 - re-raised on the main thread
                    self.error = e

    def _check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"writing to the store failed: {self.error!r}") from self.error

    def put(self, c: int, arrays: dict) -> None:
        self._check()
        self.queue.put((c, arrays))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._check()


def _release_free_heap() -> None:
    """Return the C heap's free pages to the OS before the loader forks its
    workers. Pages shared with a forked child are copied on the parent's next
    write to them (copy-on-write); in a process that had already computed large
    batches (a notebook, a benchmark) the allocator reuses gigabytes of such
    pages, which made the first batch after the fork about 5x slower."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):   # not glibc
        pass


def _default_workers() -> int:
    procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cpus // max(1, procs) - 1))


# -- the entry point ------------------------------------------------------------------
def generate(images: ImagesSpec, out: Union[str, os.PathLike], method: str = "gradcam", *,
             options: Optional[dict] = None, model: Union[str, nn.Module] = BUNDLED,
             weights: Optional[str] = None, layer: Optional[str] = None,
             target: Union[str, int, os.PathLike, None] = "predicted", batch_size: int = 32,
             workers: Optional[int] = None, size: int = 224, dtype: str = "float16",
             device: Union[str, torch.device, None] = None, normalize: Any = "auto",
             storage_options: Optional[dict] = None, retry_failed: bool = False,
             progress: bool = True, verbose: bool = True) -> GenerateSummary:
    """Saliency maps for every image of ``images`` into the Zarr store ``out``.

    Args:
        images: a folder (recursive), a text file of paths, or a sequence of paths.
        out: the store (a local path or any fsspec URL, with ``storage_options``).
            An existing store made with the same arguments is resumed: its done
            chunks are skipped. Other arguments against it raise :class:`GenerateError`.
        method, options: a name of ``fastcam.METHODS`` and its constructor options.
        model: ``"efficientnet_lite0"`` (bundled, pretrained), ``"torchvision:NAME"``
            or an ``nn.Module``; ``weights``: a state-dict file for it.
        layer: the target layer's dotted name (default: the model's last spatial layer).
        target: ``"predicted"``, a class index, or a file of ``PATH CLASS`` lines.
        batch_size: images per batch, and per chunk of a new store (an existing
            store keeps its own chunk size).
        workers: DataLoader worker processes decoding images (default: the CPUs
            per process minus one, 1 to 8).
        size, dtype: the square input/map size and the maps' dtype (float16|float32).
        device: default ``cuda`` when available (``cuda:LOCAL_RANK`` under torchrun).
        normalize: ``"auto"`` (the bundled model's own, ImageNet mean/std otherwise),
            None or ``(mean, std)``; images are pixel-space in [0, 1].
        retry_failed: also recompute chunks holding failed images.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank calls this with the same
    arguments; each computes a disjoint share of the pending chunks.
    """
    if dtype not in DTYPES:
        raise GenerateError(f"--dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if int(size) < 8:
        raise GenerateError(f"--size must be at least 8, got {size}")
    if int(batch_size) < 1:
        raise GenerateError(f"--batch-size must be >= 1, got {batch_size}")
    workers = _default_workers() if workers is None else int(workers)
    if workers < 0:
        raise GenerateError(f"--workers must be >= 0, got {workers}")
    out = os.fspath(out)
    ctx = _init_distributed(device)
    try:
        return _generate(ctx, images, out, method, options, model, weights, layer, target, int(batch_size),
                         workers, int(size), dtype, normalize, storage_options, retry_failed,
                         progress, verbose)
    finally:
        if ctx.owns_group:
            torch.distributed.destroy_process_group()


def _plan(ctx, images, out, method, options, model, weights, layer, target, batch_size, size, dtype,
          normalize, storage_options, retry_failed):
    """Rank 0: everything the ranks need to agree on, and the store opened."""
    from .. import __version__

    name, cls, full_options = method_spec(method, options)
    net, model_name, weights_record, own_norm = load_model(model, weights)
    net = net.to(ctx.device)
    norm = resolve_normalize(normalize, own_norm)
    layer_name = resolve_layer(net, layer, size, model_name == BUNDLED)
    _build_cam(cls, net, layer_name, norm, full_options)         # the options are valid
    image_list = list_images(images)
    targets, target_record = read_targets(target, image_list)
    if targets is not None:
        with torch.no_grad():
            n_classes = net(torch.zeros(1, 3, size, size, device=ctx.device)).shape[-1]
        if int(targets.max()) >= n_classes:
            raise GenerateError(f"--target: class {int(targets.max())} out of range for a model "
                                f"with {n_classes} classes")
    meta = {
        "format": FORMAT, "fastcam_version": __version__, "method": name, "options": full_options,
        "model": model_name, "weights": weights_record, "layer": layer_name, "size": size,
        "dtype": dtype, "target": target_record,
        "normalize": None if norm is None else [list(norm[0]), list(norm[1])],
        "n_images": len(image_list.paths), "paths_sha256": image_list.digest(),
        "images": image_list.source,
    }
    store = SaliencyStore.open_or_create(out, meta, image_list.paths, chunk_size=batch_size,
                                         storage_options=storage_options)
    if store.chunk_size != batch_size:
        warnings.warn(f"{out} keeps its chunk size {store.chunk_size}: that is the batch size of this run",
                      stacklevel=4)
    status = store.status()
    pending = store.pending_chunks(status, retry_failed=retry_failed)
    todo = sum(len(store.chunk_range(c)) for c in pending)
    plan = {"paths": image_list.paths, "root": image_list.root, "source": image_list.source,
            "targets": targets, "pending": pending, "skipped": store.n_images - todo,
            "layer": layer_name, "normalize": norm, "options": full_options, "method": name}
    return plan, store, net


def _generate(ctx: _Dist, images, out, method, options, model, weights, layer, target, batch_size,
              workers, size, dtype, normalize, storage_options, retry_failed, progress, verbose):
    store = net = None
    if ctx.rank == 0:
        try:
            plan, store, net = _plan(ctx, images, out, method, options, model, weights, layer, target,
                                     batch_size, size, dtype, normalize, storage_options, retry_failed)
        except GenerateError as e:
            ctx.broadcast({"error": str(e)})
            raise
        except BaseException as e:
            ctx.broadcast({"error": f"rank 0 failed: {type(e).__name__}: {e}"})
            raise
        ctx.broadcast(plan)
    else:
        plan = ctx.broadcast(None)
        if "error" in plan:
            raise GenerateError(plan["error"])
        store = SaliencyStore.attach(out, storage_options)
        net, _, _, _ = load_model(model, weights, hash_weights=False)
        net = net.to(ctx.device)
    from ..methods import METHODS

    cls = METHODS[plan["method"]]
    cam = _build_cam(cls, net, plan["layer"], plan["normalize"], plan["options"])
    image_list = ImageList(plan["paths"], plan["root"], plan["source"])
    targets = plan["targets"]
    mine = plan["pending"][ctx.rank::ctx.world]
    chunks = [list(store.chunk_range(c)) for c in mine]
    n_mine = sum(len(c) for c in chunks)
    n_pending = sum(len(store.chunk_range(c)) for c in plan["pending"])
    show = progress and ctx.rank == 0
    if verbose and ctx.rank == 0:
        print(f"fastcam generate: {store.n_images} images, {n_pending} to compute in "
              f"{len(plan['pending'])} chunk(s) of {store.chunk_size}, {plan['skipped']} already done; "
              f"{plan['method']} on {store.meta['model']}:{plan['layer']}, {ctx.world} process(es), "
              f"device {ctx.device} -> {out}", file=sys.stderr, flush=True)

    map_dtype = DTYPES[store.meta["dtype"]]
    np_dtype = np.float16 if map_dtype == torch.float16 else np.float32
    S = int(store.meta["size"])
    computed = failed_now = 0
    t0 = time.perf_counter()
    bar = None
    if show and n_mine:
        from tqdm.auto import tqdm

        desc = "generate" if ctx.world == 1 else f"generate (rank 0 of {ctx.world})"
        bar = tqdm(total=n_mine, unit="img", desc=desc, dynamic_ncols=True, smoothing=0.05,
                   file=sys.stderr)
    loader = chunk_loader(ImageDataset(image_list, S), chunks, workers=workers,
                          pin_memory=ctx.device.type == "cuda")
    if chunks and workers > 0:
        _release_free_heap()
        gc.freeze()       # the workers' garbage collector leaves the inherited objects' pages shared
    try:
        batches = iter(loader) if chunks else iter(())   # the workers start here, before the writer thread
    finally:
        if chunks and workers > 0:
            gc.unfreeze()
    writer = _ChunkWriter(store)
    rng_devices = [ctx.device] if ctx.device.type == "cuda" else []
    try:
        for c, batch in zip(mine, batches):
            idx = batch.indices.numpy()
            if idx[0] != store.chunk_range(c).start:
                raise RuntimeError("the loader delivered chunks out of order")
            n = len(idx)
            ok = batch.ok.numpy()
            arrays = {
                "maps": np.full((n, S, S), np.nan, dtype=np_dtype),
                "paths": [image_list.paths[i] for i in idx],
                "predicted": np.full(n, -1, dtype=np.int32),
                "probability": np.full(n, np.nan, dtype=np.float32),
                "target": np.full(n, -1, dtype=np.int32),
                "error": list(batch.errors),
                "status": np.where(ok, STATUS_DONE, STATUS_FAILED).astype(np.uint8),
            }
            if ok.any():
                x = batch.images.to(ctx.device, non_blocking=True)
                tg = None if targets is None else torch.as_tensor(targets[idx[ok]], device=ctx.device)
                with torch.random.fork_rng(devices=rng_devices):
                    torch.manual_seed(c)          # a chunk's result never depends on the rank or the run
                    maps = cam(x, tg)
                rec = cam.last
                prob, pred = rec.logits.float().softmax(1).max(1)
                arrays["maps"][ok] = maps.to(map_dtype).cpu().numpy()
                arrays["predicted"][ok] = pred.cpu().numpy()
                arrays["probability"][ok] = prob.cpu().numpy()
                arrays["target"][ok] = (rec.targets if rec.targets is not None else pred).cpu().numpy()
            writer.put(c, arrays)
            computed += n
            failed_now += int((~ok).sum())
            if bar is not None:
                bar.update(n)
                if failed_now:
                    bar.set_postfix(failed=failed_now, refresh=False)
        writer.close()
    finally:
        if bar is not None:
            bar.close()
    ctx.barrier()
    seconds = time.perf_counter() - t0
    computed_all, failed_all = ctx.sum([computed, failed_now])
    summary = None
    if ctx.rank == 0:
        counts = store.finalize()
        failures = []
        if counts.failed:
            status = store.arrays["status"][:]
            bad = np.flatnonzero(status == STATUS_FAILED)[:10]
            errors = store.arrays["error"]
            failures = [(plan["paths"][i], str(errors[int(i)])) for i in bad]
        summary = GenerateSummary(out, counts.n_images, counts.done, counts.failed, counts.pending,
                                  computed_all, failed_all, plan["skipped"], seconds, ctx.world, failures)
        if verbose:
            print(summary.format(), flush=True)
    summary = ctx.broadcast(summary)
    return summary


# -- command line -------------------------------------------------------------------------
def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as JSON, else kept as a string; ``-`` in KEY -> ``_``."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``fastcam generate`` options."""
    a = parser.add_argument
    a("--images", required=True, help="folder of images (recursive) or a text file of paths")
    a("--method", default="gradcam", help="explainer name (default: %(default)s)")
    a("-o", "--option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
      help="a method option (value parsed as JSON, else a string), repeatable: -o max_iter=50")
    a("--model", default=BUNDLED, help=f"{BUNDLED} (bundled, pretrained; default) or torchvision:NAME")
    a("--weights", default=None, metavar="FILE", help="state dict for the model")
    a("--layer", default=None, help="target layer (default: the model's last spatial layer)")
    a("--target", default="predicted",
      help="'predicted' (default), a class index, or a file of 'PATH CLASS' lines")
    a("--out", required=True, metavar="STORE.zarr", help="Zarr store (local path or fsspec URL)")
    a("--batch-size", type=int, default=32, help="images per batch and per chunk (default: %(default)s)")
    a("--workers", type=int, default=None, help="decoding processes (default: CPUs per process - 1)")
    a("--size", type=int, default=224, help="input and map size (default: %(default)s)")
    a("--dtype", default="float16", choices=sorted(DTYPES), help="maps dtype (default: %(default)s)")
    a("--device", default=None, help="default: cuda when available (cuda:LOCAL_RANK under torchrun)")
    a("--storage-option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
      help="fsspec storage option for a remote --out, repeatable")
    a("--retry-failed", action="store_true", help="recompute chunks that hold failed images")
    a("--no-progress", action="store_true", help="no progress bar")


def run_cli(args: argparse.Namespace) -> int:
    """``fastcam generate``: 0 on success (failed images included), 2 on a usage error."""
    try:
        summary = generate(args.images, args.out, args.method, options=dict(args.option),
                           model=args.model, weights=args.weights, layer=args.layer, target=args.target,
                           batch_size=args.batch_size, workers=args.workers, size=args.size,
                           dtype=args.dtype, device=args.device,
                           storage_options=dict(args.storage_option) or None,
                           retry_failed=args.retry_failed, progress=not args.no_progress)
    except GenerateError as e:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"fastcam generate: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nfastcam generate: interrupted; the finished chunks are in the store, run the same "
              "command again to resume", file=sys.stderr)
        return 130
    return 0 if summary.pending == 0 else 1
