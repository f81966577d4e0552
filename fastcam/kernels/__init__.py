"""Kernels behind fastcam.ops: ``reference`` (eager torch, the definition of every
op), ``cpp`` (fastcam._C, C++/OpenMP), ``triton`` and ``cuda`` (fastcam._C).

Each backend module has one function per op entry point (``cam_combine_forward``,
``cam_combine_backward``, ``mask_blend``, ``rank_reveal``, ``adaptive_kde``) with
one interface; the ops in :mod:`fastcam.ops` check their inputs and hand these
functions valid ones (contiguous, one float dtype, on one device, integer
tensors as int64, 1/std in place of std), which they do not check again."""
