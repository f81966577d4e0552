// Bilinear upsampling taps (PyTorch's interpolate, mode="bilinear"), shared by
// the cam_combine and mask_blend kernels, OpenMP and CUDA: __host__ __device__
// inline functions. The CPU tests run bilinear_tap through the C++ kernels;
// bilinear_mix only runs in the CUDA kernels (the C++ forward passes evaluate
// the same formula separably: one horizontal pass per low-res row, then a mix
// of two rows, ATen's order).
#pragma once
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

}  // namespace fastcam
