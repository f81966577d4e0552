"""The ``fastcam`` command line: argument parsing (:mod:`.cli`, :mod:`.options`),
the commands (:mod:`.generate`; :mod:`.evaluate` for ``explain``, ``eval`` and
``photos``) and the files only the commands write (:mod:`.sanity_report`). The
commands call the library packages :mod:`fastcam.generation` and
:mod:`fastcam.evaluation`; nothing in the library imports this package."""
