// Per-element math of cam_combine's min-max scaling, __host__ __device__ inline
// functions compiled into both the OpenMP and the CUDA kernels. The CPU tests
// run minmax_grad through the C++ backward; minmax_scale only runs in the CUDA
// kernels (the C++ forward scales by a precomputed 1/range, clamped so that the
// extremes are exactly 0 and 1).
#pragma once
#include "host_device.h"

namespace fastcam {

// Per-map min-max scaling. `range` = max - min; a constant map (range 0) maps to 0
// everywhere, never NaN. Division (not multiplication by 1/range) keeps the
// maximum exactly 1, which the backward pass relies on to find it.
template <typename T>
FC_HD T minmax_scale(T v, T lo, T range) {
  return range > T(0) ? (v - lo) / range : T(0);
}

// Gradient of y = (u - lo)/range w.r.t. u for one element, given the upstream
// gradient g, the output y, and the per-map terms:
//   dL/dlo = sum g (y - 1)/range, spread evenly over the elements equal to the
//   minimum (y == 0); dL/dhi = -sum g y / range, spread over y == 1
// (torch.amin/amax's subgradient convention).
template <typename T>
FC_HD T minmax_grad(T g, T y, T range, T g_lo_share, T g_hi_share) {
  if (!(range > T(0))) return T(0);
  T r = g / range;
  if (y == T(0)) r += g_lo_share;
  if (y == T(1)) r += g_hi_share;
  return r;
}

}  // namespace fastcam
