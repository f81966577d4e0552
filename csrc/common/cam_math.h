// Per-element math of cam_combine and mask_blend, __host__ __device__ inline
// functions compiled into both the OpenMP and the CUDA kernels. Through the C++
// kernels the CPU tests exercise bilinear_tap, minmax_grad, mask_scale and
// blend_pixel, the code the CUDA kernels run. bilinear_mix and minmax_scale are
// called by the CUDA kernels only: the C++ forward passes evaluate the same
// bilinear formula separably (one horizontal pass per low-res row, then a mix
// of two rows, ATen's order) and cam_combine's scales by a precomputed
// 1/range, clamped so that the extremes are exactly 0 and 1; so the CPU tests
// do not run those two functions.
#pragma once
#include <cstdint>

#include "host_device.h"

namespace fastcam {

// One output coordinate of a 1-D linear interpolation: the two source taps and
// their weights. Together two of these (rows, columns) make PyTorch's bilinear
// upsampling (torch.nn.functional.interpolate, mode="bilinear").
template <typename T>
struct LerpTap {
  int i0, i1;
  T l0, l1;
};

// Source taps for output index `dst` when resizing `in_size` -> `out_size`.
// align_corners=False: src = (dst + 0.5) * in/out - 0.5, clamped at 0 (half-pixel
// centres, as PyTorch and OpenCV INTER_LINEAR); align_corners=True:
// src = dst * (in - 1)/(out - 1). Mirrors ATen's area_pixel_compute_source_index.
template <typename T>
FC_HD LerpTap<T> bilinear_tap(int dst, int in_size, int out_size, bool align_corners) {
  T src;
  if (align_corners) {
    const T scale = out_size > 1 ? T(in_size - 1) / T(out_size - 1) : T(0);
    src = scale * T(dst);
  } else {
    const T scale = T(in_size) / T(out_size);
    src = scale * (T(dst) + T(0.5)) - T(0.5);
    if (src < T(0)) src = T(0);
  }
  LerpTap<T> t;
  t.i0 = static_cast<int>(src);
  if (t.i0 > in_size - 1) t.i0 = in_size - 1;
  t.i1 = t.i0 + (t.i0 < in_size - 1 ? 1 : 0);
  t.l1 = src - T(t.i0);
  t.l0 = T(1) - t.l1;
  return t;
}

// Bilinear value from the four taps, in ATen's evaluation order
// (h0 * (w0 * a + w1 * b) + h1 * (w0 * c + w1 * d)), so results match eagerly.
template <typename T>
FC_HD T bilinear_mix(T a, T b, T c, T d, const LerpTap<T>& ty, const LerpTap<T>& tx) {
  return ty.l0 * (tx.l0 * a + tx.l1 * b) + ty.l1 * (tx.l0 * c + tx.l1 * d);
}

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

// Mask value of the perturbation ops: the upsampled map scaled to [0, 1] as
// (u - lo) / (range + eps); a constant map (range + eps == 0) masks everything.
template <typename T>
FC_HD T mask_scale(T u, T lo, T range, T eps) {
  const T denom = range + eps;
  return denom > T(0) ? (u - lo) / denom : T(0);
}

// One perturbed pixel, optionally normalised for the model: blend of the image
// value x and the baseline value b by the mask m, then (v - mean) * inv_std.
template <typename T>
FC_HD T blend_pixel(T x, T b, T m, T mean, T inv_std) {
  return (x * m + b * (T(1) - m) - mean) * inv_std;
}

}  // namespace fastcam
