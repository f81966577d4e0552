// Python bindings of the mask_blend kernels, OpenMP and (when built) CUDA.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "cpu/mask_blend.h"
#include "dispatch.h"
#ifdef FASTCAM_WITH_CUDA
#include "cuda/device.cuh"
#include "cuda/mask_blend.cuh"
#endif

namespace py = pybind11;

namespace {

using fastcam::cp;
using fastcam::mp;

void mask_blend_cpu(std::uintptr_t x, std::uintptr_t baseline, std::uintptr_t maps,
                    std::uintptr_t index, std::uintptr_t mean, std::uintptr_t inv_std,
                    std::uintptr_t out, int64_t n, int64_t C, int64_t H, int64_t W, int64_t h,
                    int64_t w, double eps, bool align_corners, int num_threads,
                    const std::string& dtype) {
  py::gil_scoped_release nogil;
  FASTCAM_DISPATCH(dtype, fastcam::cpu::mask_blend<T>(
                              cp<T>(x), cp<T>(baseline), cp<T>(maps), cp<int64_t>(index),
                              cp<T>(mean), cp<T>(inv_std), mp<T>(out), n, C, H, W, h, w, T(eps),
                              align_corners, num_threads));
}

#ifdef FASTCAM_WITH_CUDA
// The CUDA version: the same arguments as mask_blend_cpu, with the stream
// (torch.cuda.current_stream().cuda_stream) in place of num_threads and a
// caller-allocated scratch `stats` of 2*n elements after `out`. Asynchronous on
// `stream`: the GIL is held only while the kernels are queued.
void mask_blend_cuda(std::uintptr_t x, std::uintptr_t baseline, std::uintptr_t maps,
                     std::uintptr_t index, std::uintptr_t mean, std::uintptr_t inv_std,
                     std::uintptr_t out, std::uintptr_t stats, int64_t n, int64_t C, int64_t H,
                     int64_t W, int64_t h, int64_t w, double eps, bool align_corners,
                     std::uintptr_t stream, const std::string& dtype) {
  fastcam::cuda::require_device();
  FASTCAM_DISPATCH(dtype, fastcam::cuda::mask_blend<T>(
                              cp<T>(x), cp<T>(baseline), cp<T>(maps), cp<int64_t>(index),
                              cp<T>(mean), cp<T>(inv_std), mp<T>(out), mp<T>(stats), n, C, H, W,
                              h, w, T(eps), align_corners, stream));
}
#endif

}  // namespace

void bind_mask_blend(py::module_& m) {
  m.def("mask_blend_cpu", &mask_blend_cpu);
#ifdef FASTCAM_WITH_CUDA
  m.def("mask_blend_cuda", &mask_blend_cuda);
#endif
}
