"""The processes of a ``fastcam generate`` run: one, or the ``torchrun`` ranks
(``WORLD_SIZE`` > 1; gloo on CPU, nccl on GPU)."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, Sequence, Union

import torch

from ..errors import UsageError


@dataclass(frozen=True)
class _Failed:
    message: str


@dataclass
class Distributed:
    """This process's rank among ``world``, its device, and whether it started the
    process group (and so ends it in :meth:`close`)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @classmethod
    def start(cls, device: Union[str, torch.device, None]) -> "Distributed":
        """Join the ``torchrun`` process group (when ``WORLD_SIZE`` > 1); ``device``
        None: ``cuda`` when available, ``cuda:LOCAL_RANK`` under torchrun."""
        want = torch.device(device) if device is not None else (
            torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(device=want)
        import torch.distributed as dist

        if not dist.is_available():
            raise UsageError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
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
        return cls(dist.get_rank(), dist.get_world_size(), want, owns)

    def close(self) -> None:
        if self.owns_group:
            torch.distributed.destroy_process_group()

    @property
    def active(self) -> bool:
        return self.world > 1

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj if self.rank == 0 else None]
        torch.distributed.broadcast_object_list(box, src=0,
                                                device=self.device if self.device.type == "cuda" else None)
        return box[0]

    @contextlib.contextmanager
    def failures_shared(self) -> Iterator[None]:
        """Rank 0's block before its :meth:`broadcast`: an exception in it is sent to
        the other ranks, waiting in :meth:`receive`, and raised."""
        try:
            yield
        except UsageError as e:
            self.broadcast(_Failed(str(e)))
            raise
        except BaseException as e:
            self.broadcast(_Failed(f"rank 0 failed: {type(e).__name__}: {e}"))
            raise

    def receive(self) -> Any:
        """On ranks other than 0: what rank 0 broadcasts, or its failure raised as
        :class:`UsageError`."""
        obj = self.broadcast(None)
        if isinstance(obj, _Failed):
            raise UsageError(obj.message)
        return obj

    def sum(self, values: Sequence[int]) -> list[int]:
        """Each value summed over the ranks."""
        if not self.active:
            return [int(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return [int(round(v)) for v in t.tolist()]

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()
