"""The command line's own helpers: the ``KEY=VALUE`` option parser and the one
``-o`` syntax of every command (``-o KEY=VALUE`` for every method given,
``-o METHOD.KEY=VALUE`` for one), the wrapper that turns a
:class:`~fastcam.errors.UsageError` into a one-line message and exit status 2,
the checks every command makes before any work, and the default device.
Importing this module imports no torch (``fastcam --help`` and usage errors
stay light): what needs it is imported when a command runs."""
from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any, Callable, Iterable, Optional, Sequence

from ..errors import UsageError

__all__ = ["UsageError", "key_value", "method_option", "options_for", "OPTION_HELP", "usage_errors",
           "check_common", "default_device"]

#: the ``-o`` help every command shows
OPTION_HELP = ("a method option, repeatable: -o KEY=VALUE applies to every method given, "
               "-o METHOD.KEY=VALUE to that method alone (it wins over KEY=VALUE); VALUE is "
               "parsed as JSON, else kept as a string")


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


def method_option(text: str) -> tuple[Optional[str], str, Any]:
    """One ``-o`` item: ``KEY=VALUE`` -> ``(None, key, value)`` (every method),
    ``METHOD.KEY=VALUE`` -> ``(method, key, value)``; the method lower-cased, the
    value as :func:`key_value` parses it (a ``.`` after ``=`` belongs to the value)."""
    key, value = key_value(text)
    method, dot, name = key.rpartition(".")
    if dot and not (method.strip() and name.strip()):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE or METHOD.KEY=VALUE, got {text!r}")
    return (method.strip().lower() or None), name.strip(), value


def options_for(items: Iterable[tuple[Optional[str], str, Any]], methods: Sequence[str],
                base: Optional[dict[str, dict]] = None) -> dict[str, dict[str, Any]]:
    """Method -> its options, for every method in ``methods``: ``base`` (defaults),
    then the ``KEY=VALUE`` items, then the ``METHOD.KEY=VALUE`` ones, later items
    winning within each kind. A ``METHOD.`` naming none of ``methods`` is a
    :class:`UsageError`."""
    out = {m: dict((base or {}).get(m, {})) for m in methods}
    items = list(items)
    for method, key, value in items:
        if method is None:
            for m in methods:
                out[m][key] = value
    for method, key, value in items:
        if method is not None:
            if method not in out:
                raise UsageError(f"-o {method}.{key}: {method!r} is not among the methods {list(methods)}")
            out[method][key] = value
    return out


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
