#pragma once
#include <cstdint>

namespace fastcam::cpu {

// Shapes: A (B,K,h,w), wt (B,G,K), out (B,G,H,W), s_low (B,G,h,w) = the
// pre-ReLU weighted sum, stats (B,G,2) = (min, max - min) of the upsampled map.
template <typename T>
void cam_combine_forward(const T* A, const T* wt, T* out, T* s_low, T* stats,
                         int64_t B, int64_t G, int64_t K, int64_t h, int64_t w,
                         int64_t H, int64_t W, bool relu, bool normalize,
                         bool align_corners, int num_threads);

// grad_A (B,K,h,w) and grad_wt (B,G,K) are overwritten; either may be null.
template <typename T>
void cam_combine_backward(const T* grad_out, const T* out, const T* A, const T* wt,
                          const T* s_low, const T* stats, T* grad_A, T* grad_wt,
                          int64_t B, int64_t G, int64_t K, int64_t h, int64_t w,
                          int64_t H, int64_t W, bool relu, bool normalize,
                          bool align_corners, int num_threads);

}  // namespace fastcam::cpu
