#pragma once
#include <cstdint>

namespace fastcam::cpu {

// Perturbed copies built from low-resolution maps (Score-CAM, metric masks):
//   out[j] = norm(x[index[j]] * m_j + baseline[index[j]] * (1 - m_j)),
//   m_j = mask_scale(up(maps[j])), up = bilinear (H,W) <- (h,w).
// x, baseline (B,C,H,W) (baseline may be null: zeros); maps (n,h,w);
// index (n,); mean, inv_std (C) may be null (no normalisation); out (n,C,H,W).
template <typename T>
void mask_blend(const T* x, const T* baseline, const T* maps, const int64_t* index,
                const T* mean, const T* inv_std, T* out, int64_t n, int64_t C, int64_t H,
                int64_t W, int64_t h, int64_t w, T eps, bool align_corners, int num_threads);

}  // namespace fastcam::cpu
