"""The ``fastcam`` command line, kept importable at its former path: the
parsing and the commands are :mod:`fastcam.apps`."""
from __future__ import annotations

import sys

from .apps.cli import DEFAULT_DEMO_METHODS, build_parser, main

__all__ = ["main", "build_parser", "DEFAULT_DEMO_METHODS"]

if __name__ == "__main__":
    sys.exit(main())
