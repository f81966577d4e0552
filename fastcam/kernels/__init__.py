"""Kernels behind fastcam.ops, one package per backend and one module per op in
each (``<backend>/<op>.py``): ``reference`` (eager torch, the definition of every
op), ``cpp`` (fastcam._C.cpu, C++/OpenMP), ``triton``, and ``cuda``
(fastcam._C.cuda).

Each backend package re-exports one function per op entry point
(``cam_combine_forward``, ``cam_combine_backward``, ``mask_blend``,
``rank_reveal``, ``adaptive_kde``; the same names as the custom ops and the
fastcam._C bindings) with one interface; the ops in :mod:`fastcam.ops` check
their inputs and hand the compiled backends' functions valid ones (contiguous,
one float dtype, on one device, integer tensors as int64, 1/std in place of
std), which they do not check again. The reference also holds each op's
user-level definition (``reference.cam_combine``) and takes std."""
