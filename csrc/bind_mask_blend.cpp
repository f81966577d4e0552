// Python bindings of the mask_blend kernels: fastcam._C.cpu.mask_blend (OpenMP)
// and, when built, fastcam._C.cuda.mask_blend, named as the C++ functions.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bind.h"
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

namespace cpu_entry {

void mask_blend(std::uintptr_t x, std::uintptr_t baseline, std::uintptr_t maps,
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

}  // namespace cpu_entry

#ifdef FASTCAM_WITH_CUDA
// The CUDA version: the same arguments as the CPU one, with the stream
// (torch.cuda.current_stream().cuda_stream) in place of num_threads and a
// caller-allocated scratch `stats` of 2*n elements after `out`. Asynchronous on
// `stream`: the GIL is held only while the kernels are queued.
namespace cuda_entry {

void mask_blend(std::uintptr_t x, std::uintptr_t baseline, std::uintptr_t maps,
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

}  // namespace cuda_entry
#endif

}  // namespace

void bind_mask_blend(py::module_& cpu, py::module_* cuda) {
  cpu.def("mask_blend", &cpu_entry::mask_blend);
#ifdef FASTCAM_WITH_CUDA
  cuda->def("mask_blend", &cuda_entry::mask_blend);
#else
  (void)cuda;
#endif
}
