"""The ``fastcam`` command line: argument parsing (:mod:`.cli`; the torch-free
options and help of :mod:`.arguments` and :mod:`.options`, so that help and usage
errors answer before torch is imported), the commands (:mod:`.generate`;
:mod:`.evaluate` for ``explain``, ``eval`` and ``photos``; :mod:`.bench`) and the
files only the commands write (:mod:`.sanity_report`). The commands call the
library packages :mod:`fastcam.generation` and :mod:`fastcam.evaluation`; nothing
in the library imports this package."""
