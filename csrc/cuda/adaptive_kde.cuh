// CUDA kernel of the adaptive_kde op (batched Shimazaki-Shinomoto ssvkernel KDE
// and peak counts, float64). The definition is fastcam/kernels/reference/adaptive_kde.py;
// the OpenMP version csrc/cpu/adaptive_kde.h, whose argument conventions this
// follows. Plain C++ declarations, so the host-compiled bindings can include
// this file. All pointers are device pointers to contiguous, caller-allocated
// tensors on the current device; the stream is a cudaStream_t passed as an
// integer (0 = the legacy default stream).
#pragma once
#include <cstdint>

namespace fastcam::cuda {

// x (N, S) float64; density (N, Z) float64; peaks (N) int64 (see
// fastcam::cpu::adaptive_kde). Scratch the caller allocates on the device:
//   grid (N) int32;
//   scratch (N, scratch_stride) float64, scratch_stride >= adaptive_kde_scratch_size(L, M)
//   for every channel's internal grid size L (L <= Z always, so
//   adaptive_kde_scratch_size(Z, M) is enough; checked, std::invalid_argument if not).
// NOT fully asynchronous: the channels' grid sizes are computed on the device
// and read back (the stream is synchronised once) to build the tables of each
// distinct grid size on the host; the estimates are then launched
// asynchronously on `stream`. Errors: std::runtime_error (CUDA),
// std::invalid_argument (sizes).
void adaptive_kde(const double* x, double* density, int64_t* peaks, int32_t* grid,
                  double* scratch, int64_t scratch_stride, int64_t N, int64_t S, int64_t Z, int M,
                  int max_iter, double tol, std::uintptr_t stream);

}  // namespace fastcam::cuda
