"""The package version, in a module of its own so that ``fastcam/__init__`` and
the modules that record it (``fastcam.generation.config`` writes it into every
store) import it without importing each other."""

__version__ = "0.1.0"
