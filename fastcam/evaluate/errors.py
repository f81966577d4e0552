"""The one error type of the evaluation harness."""
from __future__ import annotations


class EvalError(ValueError):
    """A problem with the arguments or the inputs; the message is one line meant
    for the user (the CLI prints it and exits with status 2)."""
