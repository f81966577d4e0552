"""Kernels behind fastcam.ops: ``reference`` (eager torch, the definition of every
op), ``cpu`` (fastcam._C, C++/OpenMP), ``triton`` and ``cuda`` (fastcam._C)."""
