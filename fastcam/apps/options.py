"""The command line's own helpers: the ``KEY=VALUE`` option parser, the
wrapper that turns a :class:`~fastcam.errors.UsageError` into a one-line message
and exit status 2, the checks every command makes before any work, and the
default device. Importing this module imports no torch (``fastcam --help``
stays light): what needs it is imported when a command runs."""
from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any, Callable

from ..errors import UsageError

__all__ = ["UsageError", "key_value", "usage_errors", "check_common", "default_device"]


def default_device() -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"`` (imports torch: called when a
    command runs, never while parsing)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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


def usage_errors(command: str) -> Callable:
    """Wrap a subcommand: a :class:`UsageError` becomes a one-line message and exit code 2."""
    def wrap(run):
        @functools.wraps(run)
        def guarded(args: argparse.Namespace) -> int:
            try:
                return run(args)
            except UsageError as e:
                print(f"fastcam {command}: error: {e}", file=sys.stderr)
                return 2
        return guarded
    return wrap


def check_common(args: argparse.Namespace) -> None:
    """The checks of ``--size``, ``--device`` and ``--out`` every command makes
    before any work (those it has); a ``--device`` not given becomes
    :func:`default_device`."""
    from ..preflight import check_device, check_out_dir, check_size

    if hasattr(args, "size"):
        check_size(args.size)
    if hasattr(args, "device"):
        if args.device is None:
            args.device = default_device()
        check_device(args.device)
    check_out_dir(args.out)
