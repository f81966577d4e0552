"""Progress bars (tqdm, on stderr) for calls that run many model passes per image.

A call that may show a bar opens a :func:`scope` with the caller's ``progress``
choice (``True``, ``False``, or ``None``: on when stderr is a terminal); the
loops inside it report through :func:`counted` (a score function of
:meth:`fastcam.engine.Engine.stream_scores`, which sees every chunk of copies)
or :func:`track` (a plain loop: Opti-CAM's iterations). Outside a scope, or
with progress off, both hand back what they were given: the bars never change
what is computed.
"""
from __future__ import annotations

import contextlib
import contextvars
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

__all__ = ["check_progress", "scope", "counted", "track"]

T = TypeVar("T")


@dataclass
class _Scope:
    desc: str
    bars: list = field(default_factory=list)


#: the innermost scope: a :class:`_Scope` (bars on), :data:`_OFF`, or None (no scope)
_SCOPE: contextvars.ContextVar[Any] = contextvars.ContextVar("fastcam_progress", default=None)
_OFF = object()


def _showing() -> bool:
    return isinstance(_SCOPE.get(), _Scope)


def check_progress(progress: Any) -> Optional[bool]:
    """``progress`` checked: True, False or None (``TypeError`` otherwise)."""
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {progress!r}")
    return progress


def enabled(progress: Optional[bool]) -> bool:
    """Whether bars show: ``progress``, or for None whether stderr is a terminal."""
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())
    return progress


@contextlib.contextmanager
def scope(progress: Optional[bool], desc: str) -> Iterator[None]:
    """Bars for the loops run inside, labelled ``desc``, or none; an inner scope (a
    method a metric runs, the explainers of a command with its own bar) keeps the
    outer one's choice. Bars left open by an error are closed on exit."""
    check_progress(progress)
    if _SCOPE.get() is not None:
        yield
        return
    state = _Scope(desc) if enabled(progress) else _OFF
    token = _SCOPE.set(state)
    try:
        yield
    finally:
        _SCOPE.reset(token)
        for bar in getattr(state, "bars", ()):
            bar.close()


def _bar(total: Optional[int], unit: str):
    from tqdm.auto import tqdm

    state = _SCOPE.get()
    bar = tqdm(total=total, desc=state.desc, unit=unit, file=sys.stderr, leave=False,
               dynamic_ncols=True)
    state.bars.append(bar)
    return bar


def counted(score_fn: Callable[..., T], total: int, unit: str = "pass") -> Callable[..., T]:
    """``score_fn(outputs, image)`` that also advances a bar of ``total`` by each
    chunk's ``len(image)`` (the copies it scores), when a scope shows bars."""
    if not _showing():
        return score_fn
    bar = _bar(total, unit)

    def scored(outputs, image, *args: Any, **kwargs: Any) -> T:
        out = score_fn(outputs, image, *args, **kwargs)
        bar.update(len(image))
        return out
    return scored


def track(iterable: Iterable[T], total: Optional[int] = None, unit: str = "it") -> Iterable[T]:
    """``iterable``, advancing a bar per item when a scope shows bars."""
    if not _showing():
        return iterable
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    bar = _bar(total, unit)

    def items() -> Iterator[T]:
        for item in iterable:
            yield item
            bar.update(1)
    return items()
