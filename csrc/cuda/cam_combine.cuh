// CUDA kernels of cam_combine (definition: fastcam/kernels/reference/cam_combine.py; the
// OpenMP version: csrc/cpu/cam_combine.cpp). Plain C++ declarations, so the
// host-compiled bindings can include this file; the stream is a cudaStream_t
// passed as an integer (torch.cuda.current_stream().cuda_stream; 0 = the
// legacy default stream). All pointers are device pointers to contiguous
// tensors on the current device. The launches are asynchronous on `stream`;
// a launch error is thrown as std::runtime_error.
#pragma once
#include <cstdint>

namespace fastcam::cuda {

// Shapes: A (B,K,h,w), wt (B,G,K), out (B,G,H,W), s_low (B,G,h,w) = the
// pre-ReLU weighted sum, stats (B,G,2) = (min, max - min) of the upsampled map.
template <typename T>
void cam_combine_forward(const T* A, const T* wt, T* out, T* s_low, T* stats,
                         int64_t B, int64_t G, int64_t K, int64_t h, int64_t w,
                         int64_t H, int64_t W, bool relu, bool normalize,
                         bool align_corners, std::uintptr_t stream);

// grad_s is scratch of B*G*h*w elements (the gradient w.r.t. s_low) that the
// caller allocates; grad_A (B,K,h,w) and grad_wt (B,G,K) are overwritten;
// either may be null.
template <typename T>
void cam_combine_backward(const T* grad_out, const T* out, const T* A, const T* wt,
                          const T* s_low, const T* stats, T* grad_s, T* grad_A, T* grad_wt,
                          int64_t B, int64_t G, int64_t K, int64_t h, int64_t w,
                          int64_t H, int64_t W, bool relu, bool normalize,
                          bool align_corners, std::uintptr_t stream);

}  // namespace fastcam::cuda
