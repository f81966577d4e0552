#pragma once
#include <cstdint>

namespace fastcam::cpu {

// Perturbed copies revealing pixels in a given order (insertion / deletion):
//   out[j] = norm(rank[index[j]] < counts[j] ? src[index[j]] : dst[index[j]]).
// src, dst (B,C,H,W), either may be null (zeros); rank (B,H*W): position of
// each pixel in the order; counts, index (n,); mean, inv_std (C) may be null (no
// normalisation); out (n,C,H,W).
template <typename T>
void rank_reveal(const T* src, const T* dst, const int64_t* rank, const int64_t* counts,
                 const int64_t* index, const T* mean, const T* inv_std, T* out, int64_t n,
                 int64_t C, int64_t HW, int num_threads);

}  // namespace fastcam::cpu
