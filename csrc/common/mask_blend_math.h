// Per-element math of mask_blend (mask scaling and blending with a baseline),
// __host__ __device__ inline functions compiled into both the OpenMP and the
// CUDA kernels, so the CPU tests run the code the CUDA kernels run.
#pragma once
#include "host_device.h"

namespace fastcam {

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
