// CUDA kernels of the mask_blend op (definition: fastcam/kernels/reference/mask_blend.py;
// the OpenMP version: csrc/cpu/mask_blend.h, whose argument conventions these
// follow). Plain C++ declarations, so the
// host-compiled bindings can include this file; the stream is a cudaStream_t
// passed as an integer (torch.cuda.current_stream().cuda_stream; 0 = the legacy
// default stream). All pointers are device pointers to contiguous tensors on
// the current device; an optional tensor is a null pointer. The launches are
// asynchronous on `stream`; a launch error is thrown as std::runtime_error, a
// bad size as std::invalid_argument.
#pragma once
#include <cstdint>

namespace fastcam::cuda {

// out[j] = norm(x[index[j]] * m_j + baseline[index[j]] * (1 - m_j)),
// m_j = mask_scale(up(maps[j])), up = bilinear (H,W) <- (h,w).
// x, baseline (B,C,H,W) (baseline may be null: zeros); maps (n,h,w); index (n,)
// int64 in [0, B) (not checked); mean, inv_std (C) may be null (0 and 1);
// out (n,C,H,W). stats is scratch of 2*n elements that the caller allocates
// (it receives each upsampled map's (min, max - min)).
template <typename T>
void mask_blend(const T* x, const T* baseline, const T* maps, const int64_t* index,
                const T* mean, const T* inv_std, T* out, T* stats, int64_t n, int64_t C,
                int64_t H, int64_t W, int64_t h, int64_t w, T eps, bool align_corners,
                std::uintptr_t stream);

}  // namespace fastcam::cuda
