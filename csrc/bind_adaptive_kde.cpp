// Python bindings of the adaptive_kde kernels, OpenMP and (when built) CUDA
// (batched ssvkernel + peak counts).
#include <pybind11/pybind11.h>

#include <climits>
#include <cstdint>
#include <stdexcept>

#include "cpu/adaptive_kde.h"
#ifdef FASTCAM_WITH_CUDA
#include "common/kde_math.h"
#include "cuda/adaptive_kde.cuh"
#include "cuda/device.cuh"
#endif

namespace py = pybind11;

namespace {

// x (N, S) float64, density (N, Z) float64, peaks (N,) int64: contiguous,
// caller-allocated, passed as data pointers.
void adaptive_kde_cpu(std::uintptr_t x, std::uintptr_t density, std::uintptr_t peaks, int64_t N,
                      int64_t S, int64_t Z, int M, int max_iter, double tol, int num_threads) {
  py::gil_scoped_release nogil;
  fastcam::cpu::adaptive_kde(reinterpret_cast<const double*>(x),
                             reinterpret_cast<double*>(density),
                             reinterpret_cast<int64_t*>(peaks), N, S, Z, M, max_iter, tol,
                             num_threads);
}

#ifdef FASTCAM_WITH_CUDA
// The CUDA version: the same arguments as adaptive_kde_cpu, device pointers, the
// caller-allocated scratch grid (N,) int32 and scratch (N, scratch_stride)
// float64 (scratch_stride >= adaptive_kde_scratch_size(Z, M)), and the stream
// (torch.cuda.current_stream().cuda_stream) in place of num_threads. It waits
// once for the stream (the channels' grid sizes are read back), without the GIL.
void adaptive_kde_cuda(std::uintptr_t x, std::uintptr_t density, std::uintptr_t peaks,
                       std::uintptr_t grid, std::uintptr_t scratch, int64_t scratch_stride,
                       int64_t N, int64_t S, int64_t Z, int M, int max_iter, double tol,
                       std::uintptr_t stream) {
  fastcam::cuda::require_device();
  py::gil_scoped_release nogil;
  fastcam::cuda::adaptive_kde(reinterpret_cast<const double*>(x),
                              reinterpret_cast<double*>(density),
                              reinterpret_cast<int64_t*>(peaks), reinterpret_cast<int32_t*>(grid),
                              reinterpret_cast<double*>(scratch), scratch_stride, N, S, Z, M,
                              max_iter, tol, stream);
}

// Doubles of per-channel scratch for an internal grid of L points (kde_scratch_size).
int64_t adaptive_kde_scratch_size(int64_t L, int M) {
  if (L < 0 || L > INT_MAX || M < 0)
    throw std::invalid_argument("adaptive_kde_scratch_size: bad L or M");
  return fastcam::kde_scratch_size(int(L), M);
}
#endif

}  // namespace

void bind_adaptive_kde(py::module_& m) {
  m.def("adaptive_kde_cpu", &adaptive_kde_cpu,
        "Batched locally adaptive KDE (ssvkernel) on linspace(0,1,Z) and peak counts (float64).");
#ifdef FASTCAM_WITH_CUDA
  m.def("adaptive_kde_cuda", &adaptive_kde_cuda,
        "CUDA version of adaptive_kde_cpu (device pointers, scratch, stream).");
  m.def("adaptive_kde_scratch_size", &adaptive_kde_scratch_size,
        "Doubles of adaptive_kde_cuda scratch per channel for an internal grid of L points.");
#endif
}
