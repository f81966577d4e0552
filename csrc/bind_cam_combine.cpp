// Python bindings of the cam_combine kernels: fastcam._C.cpu.cam_combine_forward /
// _backward (OpenMP) and, when built, fastcam._C.cuda.cam_combine_forward /
// _backward, each named as the C++ function it calls.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bind.h"
#include "cpu/cam_combine.h"
#include "dispatch.h"
#ifdef FASTCAM_WITH_CUDA
#include "cuda/cam_combine.cuh"
#include "cuda/device.cuh"
#endif

namespace py = pybind11;

namespace {

using fastcam::cp;
using fastcam::mp;

namespace cpu_entry {

void cam_combine_forward(std::uintptr_t A, std::uintptr_t wt, std::uintptr_t out,
                         std::uintptr_t s_low, std::uintptr_t stats, int64_t B, int64_t G,
                         int64_t K, int64_t h, int64_t w, int64_t H, int64_t W, bool relu,
                         bool normalize, bool align_corners, int num_threads,
                         const std::string& dtype) {
  py::gil_scoped_release nogil;
  FASTCAM_DISPATCH(dtype, fastcam::cpu::cam_combine_forward<T>(
                              cp<T>(A), cp<T>(wt), mp<T>(out), mp<T>(s_low), mp<T>(stats), B, G,
                              K, h, w, H, W, relu, normalize, align_corners, num_threads));
}

void cam_combine_backward(std::uintptr_t grad_out, std::uintptr_t out, std::uintptr_t A,
                          std::uintptr_t wt, std::uintptr_t s_low, std::uintptr_t stats,
                          std::uintptr_t grad_A, std::uintptr_t grad_wt, int64_t B, int64_t G,
                          int64_t K, int64_t h, int64_t w, int64_t H, int64_t W, bool relu,
                          bool normalize, bool align_corners, int num_threads,
                          const std::string& dtype) {
  py::gil_scoped_release nogil;
  FASTCAM_DISPATCH(dtype, fastcam::cpu::cam_combine_backward<T>(
                              cp<T>(grad_out), cp<T>(out), cp<T>(A), cp<T>(wt), cp<T>(s_low),
                              cp<T>(stats), mp<T>(grad_A), mp<T>(grad_wt), B, G, K, h, w, H, W,
                              relu, normalize, align_corners, num_threads));
}

}  // namespace cpu_entry

#ifdef FASTCAM_WITH_CUDA
// The CUDA versions: the stream (torch.cuda.current_stream().cuda_stream) in
// place of num_threads, and for the backward a caller-allocated scratch grad_s
// (B,G,h,w). Asynchronous on `stream`.
namespace cuda_entry {

void cam_combine_forward(std::uintptr_t A, std::uintptr_t wt, std::uintptr_t out,
                         std::uintptr_t s_low, std::uintptr_t stats, int64_t B, int64_t G,
                         int64_t K, int64_t h, int64_t w, int64_t H, int64_t W, bool relu,
                         bool normalize, bool align_corners, std::uintptr_t stream,
                         const std::string& dtype) {
  fastcam::cuda::require_device();
  FASTCAM_DISPATCH(dtype, fastcam::cuda::cam_combine_forward<T>(
                              cp<T>(A), cp<T>(wt), mp<T>(out), mp<T>(s_low), mp<T>(stats), B, G,
                              K, h, w, H, W, relu, normalize, align_corners, stream));
}

void cam_combine_backward(std::uintptr_t grad_out, std::uintptr_t out, std::uintptr_t A,
                          std::uintptr_t wt, std::uintptr_t s_low, std::uintptr_t stats,
                          std::uintptr_t grad_s, std::uintptr_t grad_A, std::uintptr_t grad_wt,
                          int64_t B, int64_t G, int64_t K, int64_t h, int64_t w, int64_t H,
                          int64_t W, bool relu, bool normalize, bool align_corners,
                          std::uintptr_t stream, const std::string& dtype) {
  fastcam::cuda::require_device();
  FASTCAM_DISPATCH(dtype, fastcam::cuda::cam_combine_backward<T>(
                              cp<T>(grad_out), cp<T>(out), cp<T>(A), cp<T>(wt), cp<T>(s_low),
                              cp<T>(stats), mp<T>(grad_s), mp<T>(grad_A), mp<T>(grad_wt), B, G,
                              K, h, w, H, W, relu, normalize, align_corners, stream));
}

}  // namespace cuda_entry
#endif

}  // namespace

void bind_cam_combine(py::module_& cpu, py::module_* cuda) {
  cpu.def("cam_combine_forward", &cpu_entry::cam_combine_forward);
  cpu.def("cam_combine_backward", &cpu_entry::cam_combine_backward);
#ifdef FASTCAM_WITH_CUDA
  cuda->def("cam_combine_forward", &cuda_entry::cam_combine_forward);
  cuda->def("cam_combine_backward", &cuda_entry::cam_combine_backward);
#else
  (void)cuda;
#endif
}
