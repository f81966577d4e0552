// Python bindings of the adaptive_kde kernels (batched ssvkernel + peak counts):
// fastcam._C.cpu.adaptive_kde (OpenMP) and, when built, fastcam._C.cuda.adaptive_kde
// and fastcam._C.cuda.adaptive_kde_scratch_size, named as the C++ functions.
#include <pybind11/pybind11.h>

#include <climits>
#include <cstdint>
#include <stdexcept>

#include "bind.h"
#include "cpu/adaptive_kde.h"
#ifdef FASTCAM_WITH_CUDA
#include "common/adaptive_kde_math.h"
#include "cuda/adaptive_kde.cuh"
#include "cuda/device.cuh"
#endif

namespace py = pybind11;

namespace {

namespace cpu_entry {

// x (N, S) float64, density (N, Z) float64, peaks (N,) int64: contiguous,
// caller-allocated, passed as data pointers.
void adaptive_kde(std::uintptr_t x, std::uintptr_t density, std::uintptr_t peaks, int64_t N,
                  int64_t S, int64_t Z, int M, int max_iter, double tol, int num_threads) {
  py::gil_scoped_release nogil;
  fastcam::cpu::adaptive_kde(reinterpret_cast<const double*>(x),
                             reinterpret_cast<double*>(density),
                             reinterpret_cast<int64_t*>(peaks), N, S, Z, M, max_iter, tol,
                             num_threads);
}

}  // namespace cpu_entry

#ifdef FASTCAM_WITH_CUDA
namespace cuda_entry {

// The CUDA version: the same arguments as the CPU one, device pointers, the
// caller-allocated scratch grid (N,) int32 and scratch (N, scratch_stride)
// float64 (scratch_stride >= adaptive_kde_scratch_size(Z, M)), and the stream
// (torch.cuda.current_stream().cuda_stream) in place of num_threads. It waits
// once for the stream (the channels' grid sizes are read back), without the GIL.
void adaptive_kde(std::uintptr_t x, std::uintptr_t density, std::uintptr_t peaks,
                  std::uintptr_t grid, std::uintptr_t scratch, int64_t scratch_stride, int64_t N,
                  int64_t S, int64_t Z, int M, int max_iter, double tol, std::uintptr_t stream) {
  fastcam::cuda::require_device();
  py::gil_scoped_release nogil;
  fastcam::cuda::adaptive_kde(reinterpret_cast<const double*>(x),
                              reinterpret_cast<double*>(density),
                              reinterpret_cast<int64_t*>(peaks), reinterpret_cast<int32_t*>(grid),
                              reinterpret_cast<double*>(scratch), scratch_stride, N, S, Z, M,
                              max_iter, tol, stream);
}

// Doubles of per-channel scratch for an internal grid of L points.
int64_t adaptive_kde_scratch_size(int64_t L, int M) {
  if (L < 0 || L > INT_MAX || M < 0)
    throw std::invalid_argument("adaptive_kde_scratch_size: bad L or M");
  return fastcam::adaptive_kde_scratch_size(int(L), M);
}

}  // namespace cuda_entry
#endif

}  // namespace

void bind_adaptive_kde(py::module_& cpu, py::module_* cuda) {
  cpu.def("adaptive_kde", &cpu_entry::adaptive_kde,
          "Batched locally adaptive KDE (ssvkernel) on linspace(0,1,Z) and peak counts (float64).");
#ifdef FASTCAM_WITH_CUDA
  cuda->def("adaptive_kde", &cuda_entry::adaptive_kde,
            "CUDA version of cpu.adaptive_kde (device pointers, scratch, stream).");
  cuda->def("adaptive_kde_scratch_size", &cuda_entry::adaptive_kde_scratch_size,
            "Doubles of adaptive_kde scratch per channel for an internal grid of L points.");
#else
  (void)cuda;
#endif
}
