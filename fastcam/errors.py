"""The one error type of fastcam's runs and commands.

It lives at the bottom of the package (it imports nothing) because it is raised
at every level a command reaches: reading a weights file (:mod:`fastcam.models`),
the run checks (:mod:`fastcam.preflight`), the dataset store
(:mod:`fastcam.generation`), the evaluation files (:mod:`fastcam.evaluation`)
and the command line (:mod:`fastcam.apps`), which prints it."""
from __future__ import annotations


class UsageError(ValueError):
    """A problem with a command's arguments or inputs (model, weights, layer, files,
    store); the message is one line meant for the user: the command line prints
    it and exits with status 2. ``fastcam.generation.GenerateError`` and
    ``fastcam.evaluation.EvalError`` are this class."""
