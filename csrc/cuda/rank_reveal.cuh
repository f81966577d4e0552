// CUDA kernel of the rank_reveal op (definition: fastcam/kernels/reference/rank_reveal.py;
// the OpenMP version: csrc/cpu/rank_reveal.h, whose argument conventions it
// follows). Plain C++ declarations, so the
// host-compiled bindings can include this file; the stream is a cudaStream_t
// passed as an integer (torch.cuda.current_stream().cuda_stream; 0 = the legacy
// default stream). All pointers are device pointers to contiguous tensors on
// the current device; an optional tensor is a null pointer. The launch is
// asynchronous on `stream`; a launch error is thrown as std::runtime_error, a
// bad size as std::invalid_argument.
#pragma once
#include <cstdint>

namespace fastcam::cuda {

// out[j] = norm(rank[index[j]] < counts[j] ? src[index[j]] : dst[index[j]]).
// src, dst (B,C,H,W), either may be null (zeros); rank (B,H*W) int64; counts,
// index (n,) int64; mean, inv_std (C) may be null; out (n,C,H,W).
template <typename T>
void rank_reveal(const T* src, const T* dst, const int64_t* rank, const int64_t* counts,
                 const int64_t* index, const T* mean, const T* inv_std, T* out, int64_t n,
                 int64_t C, int64_t HW, std::uintptr_t stream);

}  // namespace fastcam::cuda
