// pybind11 module fastcam._C. Kernels take raw pointers (as integers), sizes
// and, for CUDA, a stream handle: the module does not link libtorch, so one
// build serves every torch version. Dtype is passed as "float32"/"float64".
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "cpu/cam_combine.h"
#ifdef FASTCAM_WITH_CUDA
#include "cuda/cam_combine.cuh"
#include "cuda/device.cuh"
#endif

namespace py = pybind11;

namespace {

template <typename T>
const T* cp(std::uintptr_t p) { return reinterpret_cast<const T*>(p); }
template <typename T>
T* mp(std::uintptr_t p) { return reinterpret_cast<T*>(p); }

void check_dtype(const std::string& dtype) {
  if (dtype != "float32" && dtype != "float64")
    throw std::invalid_argument("fastcam._C: unsupported dtype " + dtype + " (float32 or float64)");
}

#define FASTCAM_DISPATCH(dtype, ...)            \
  do {                                          \
    check_dtype(dtype);                         \
    if (dtype == "float32") {                   \
      using T = float;                          \
      __VA_ARGS__;                              \
    } else {                                    \
      using T = double;                         \
      __VA_ARGS__;                              \
    }                                           \
  } while (0)

void cpu_forward(std::uintptr_t A, std::uintptr_t wt, std::uintptr_t out, std::uintptr_t s_low,
                 std::uintptr_t stats, int64_t B, int64_t G, int64_t K, int64_t h, int64_t w,
                 int64_t H, int64_t W, bool relu, bool normalize, bool align_corners,
                 int num_threads, const std::string& dtype) {
  py::gil_scoped_release nogil;
  FASTCAM_DISPATCH(dtype, fastcam::cpu::cam_combine_forward<T>(
                              cp<T>(A), cp<T>(wt), mp<T>(out), mp<T>(s_low), mp<T>(stats), B, G,
                              K, h, w, H, W, relu, normalize, align_corners, num_threads));
}

void cpu_backward(std::uintptr_t grad_out, std::uintptr_t out, std::uintptr_t A,
                  std::uintptr_t wt, std::uintptr_t s_low, std::uintptr_t stats,
                  std::uintptr_t grad_A, std::uintptr_t grad_wt, int64_t B, int64_t G, int64_t K,
                  int64_t h, int64_t w, int64_t H, int64_t W, bool relu, bool normalize,
                  bool align_corners, int num_threads, const std::string& dtype) {
  py::gil_scoped_release nogil;
  FASTCAM_DISPATCH(dtype, fastcam::cpu::cam_combine_backward<T>(
                              cp<T>(grad_out), cp<T>(out), cp<T>(A), cp<T>(wt), cp<T>(s_low),
                              cp<T>(stats), mp<T>(grad_A), mp<T>(grad_wt), B, G, K, h, w, H, W,
                              relu, normalize, align_corners, num_threads));
}

#ifdef FASTCAM_WITH_CUDA
void cuda_forward(std::uintptr_t A, std::uintptr_t wt, std::uintptr_t out, std::uintptr_t s_low,
                  std::uintptr_t stats, int64_t B, int64_t G, int64_t K, int64_t h, int64_t w,
                  int64_t H, int64_t W, bool relu, bool normalize, bool align_corners,
                  std::uintptr_t stream, const std::string& dtype) {
  fastcam::cuda::require_device();
  FASTCAM_DISPATCH(dtype, fastcam::cuda::cam_combine_forward<T>(
                              cp<T>(A), cp<T>(wt), mp<T>(out), mp<T>(s_low), mp<T>(stats), B, G,
                              K, h, w, H, W, relu, normalize, align_corners, stream));
}

void cuda_backward(std::uintptr_t grad_out, std::uintptr_t out, std::uintptr_t A,
                   std::uintptr_t wt, std::uintptr_t s_low, std::uintptr_t stats,
                   std::uintptr_t grad_s, std::uintptr_t grad_A, std::uintptr_t grad_wt,
                   int64_t B, int64_t G, int64_t K, int64_t h, int64_t w, int64_t H, int64_t W,
                   bool relu, bool normalize, bool align_corners, std::uintptr_t stream,
                   const std::string& dtype) {
  fastcam::cuda::require_device();
  FASTCAM_DISPATCH(dtype, fastcam::cuda::cam_combine_backward<T>(
                              cp<T>(grad_out), cp<T>(out), cp<T>(A), cp<T>(wt), cp<T>(s_low),
                              cp<T>(stats), mp<T>(grad_s), mp<T>(grad_A), mp<T>(grad_wt), B, G,
                              K, h, w, H, W, relu, normalize, align_corners, stream));
}
#endif

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastcam compiled kernels (C++/OpenMP and, when built, CUDA)";
  m.def("cam_combine_forward_cpu", &cpu_forward);
  m.def("cam_combine_backward_cpu", &cpu_backward);
#ifdef FASTCAM_WITH_CUDA
  m.attr("cuda_compiled") = true;
  m.attr("cuda_architectures") = FASTCAM_CUDA_ARCHS;
  m.def("cuda_device_count", &fastcam::cuda::device_count,
        "Number of CUDA devices the runtime sees (0 without a GPU or driver).");
  m.def("cam_combine_forward_cuda", &cuda_forward);
  m.def("cam_combine_backward_cuda", &cuda_backward);
#else
  m.attr("cuda_compiled") = false;
  m.attr("cuda_architectures") = "";
  m.def("cuda_device_count", []() { return 0; });
#endif
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}
