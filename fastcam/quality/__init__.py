"""Explanation-quality scores that a method itself optimises, shared with
:mod:`fastcam.metrics` (which re-exports them): :mod:`.avx`."""
from .avx import AVXComponents, avx_of_pairs, pearson

__all__ = ["AVXComponents", "avx_of_pairs", "pearson"]
