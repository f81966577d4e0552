"""The execution engine: every pass of the user's model (:mod:`fastcam.engine.core`),
on an inference graph where it can (:mod:`fastcam.engine.graph`), in a precision
(:mod:`fastcam.engine.precision`)."""
from .core import Engine, ScoreFn, TailForward, engine_for, in_pass
from .graph import InferenceGraph, graph_status, refresh
from .precision import PRECISIONS, Precision, check_precision, cpu_supports

__all__ = ["Engine", "ScoreFn", "TailForward", "engine_for", "in_pass", "InferenceGraph",
           "graph_status", "refresh", "PRECISIONS", "Precision", "check_precision", "cpu_supports"]
