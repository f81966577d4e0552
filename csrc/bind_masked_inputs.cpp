// Python bindings of the perturbation kernels (mask_blend, rank_reveal).
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "cpu/masked_inputs.h"
#ifdef FASTCAM_WITH_CUDA
#include "cuda/device.cuh"
#include "cuda/masked_inputs.cuh"
#endif

namespace py = pybind11;

namespace {

template <typename T>
const T* cp(std::uintptr_t p) { return reinterpret_cast<const T*>(p); }

void mask_blend_cpu(std::uintptr_t x, std::uintptr_t baseline, std::uintptr_t maps,
                    std::uintptr_t index, std::uintptr_t mean, std::uintptr_t inv_std,
                    std::uintptr_t out, int64_t n, int64_t C, int64_t H, int64_t W, int64_t h,
                    int64_t w, double eps, bool align_corners, int num_threads,
                    const std::string& dtype) {
  py::gil_scoped_release nogil;
  const auto* idx = reinterpret_cast<const int64_t*>(index);
  if (dtype == "float32")
    fastcam::cpu::mask_blend<float>(cp<float>(x), cp<float>(baseline), cp<float>(maps), idx,
                                    cp<float>(mean), cp<float>(inv_std),
                                    reinterpret_cast<float*>(out), n, C, H, W, h, w, float(eps),
                                    align_corners, num_threads);
  else if (dtype == "float64")
    fastcam::cpu::mask_blend<double>(cp<double>(x), cp<double>(baseline), cp<double>(maps), idx,
                                     cp<double>(mean), cp<double>(inv_std),
                                     reinterpret_cast<double*>(out), n, C, H, W, h, w, eps,
                                     align_corners, num_threads);
  else
    throw std::invalid_argument("fastcam._C.mask_blend_cpu: unsupported dtype " + dtype);
}

void rank_reveal_cpu(std::uintptr_t src, std::uintptr_t dst, std::uintptr_t rank,
                     std::uintptr_t counts, std::uintptr_t index, std::uintptr_t mean,
                     std::uintptr_t inv_std, std::uintptr_t out, int64_t n, int64_t C,
                     int64_t HW, int num_threads, const std::string& dtype) {
  py::gil_scoped_release nogil;
  const auto* r = reinterpret_cast<const int64_t*>(rank);
  const auto* k = reinterpret_cast<const int64_t*>(counts);
  const auto* idx = reinterpret_cast<const int64_t*>(index);
  if (dtype == "float32")
    fastcam::cpu::rank_reveal<float>(cp<float>(src), cp<float>(dst), r, k, idx, cp<float>(mean),
                                     cp<float>(inv_std), reinterpret_cast<float*>(out), n, C, HW,
                                     num_threads);
  else if (dtype == "float64")
    fastcam::cpu::rank_reveal<double>(cp<double>(src), cp<double>(dst), r, k, idx,
                                      cp<double>(mean), cp<double>(inv_std),
                                      reinterpret_cast<double*>(out), n, C, HW, num_threads);
  else
    throw std::invalid_argument("fastcam._C.rank_reveal_cpu: unsupported dtype " + dtype);
}

#ifdef FASTCAM_WITH_CUDA
// The CUDA versions: the same arguments as the _cpu ones, with the stream
// (torch.cuda.current_stream().cuda_stream) in place of num_threads, and for
// mask_blend a caller-allocated scratch `stats` of 2*n elements after `out`.
// Asynchronous on `stream`: the GIL is held only while the kernels are queued.
void mask_blend_cuda(std::uintptr_t x, std::uintptr_t baseline, std::uintptr_t maps,
                     std::uintptr_t index, std::uintptr_t mean, std::uintptr_t inv_std,
                     std::uintptr_t out, std::uintptr_t stats, int64_t n, int64_t C, int64_t H,
                     int64_t W, int64_t h, int64_t w, double eps, bool align_corners,
                     std::uintptr_t stream, const std::string& dtype) {
  fastcam::cuda::require_device();
  const auto* idx = reinterpret_cast<const int64_t*>(index);
  if (dtype == "float32")
    fastcam::cuda::mask_blend<float>(cp<float>(x), cp<float>(baseline), cp<float>(maps), idx,
                                     cp<float>(mean), cp<float>(inv_std),
                                     reinterpret_cast<float*>(out),
                                     reinterpret_cast<float*>(stats), n, C, H, W, h, w,
                                     float(eps), align_corners, stream);
  else if (dtype == "float64")
    fastcam::cuda::mask_blend<double>(cp<double>(x), cp<double>(baseline), cp<double>(maps), idx,
                                      cp<double>(mean), cp<double>(inv_std),
                                      reinterpret_cast<double*>(out),
                                      reinterpret_cast<double*>(stats), n, C, H, W, h, w, eps,
                                      align_corners, stream);
  else
    throw std::invalid_argument("fastcam._C.mask_blend_cuda: unsupported dtype " + dtype);
}

void rank_reveal_cuda(std::uintptr_t src, std::uintptr_t dst, std::uintptr_t rank,
                      std::uintptr_t counts, std::uintptr_t index, std::uintptr_t mean,
                      std::uintptr_t inv_std, std::uintptr_t out, int64_t n, int64_t C,
                      int64_t HW, std::uintptr_t stream, const std::string& dtype) {
  fastcam::cuda::require_device();
  const auto* r = reinterpret_cast<const int64_t*>(rank);
  const auto* k = reinterpret_cast<const int64_t*>(counts);
  const auto* idx = reinterpret_cast<const int64_t*>(index);
  if (dtype == "float32")
    fastcam::cuda::rank_reveal<float>(cp<float>(src), cp<float>(dst), r, k, idx,
                                      cp<float>(mean), cp<float>(inv_std),
                                      reinterpret_cast<float*>(out), n, C, HW, stream);
  else if (dtype == "float64")
    fastcam::cuda::rank_reveal<double>(cp<double>(src), cp<double>(dst), r, k, idx,
                                       cp<double>(mean), cp<double>(inv_std),
                                       reinterpret_cast<double*>(out), n, C, HW, stream);
  else
    throw std::invalid_argument("fastcam._C.rank_reveal_cuda: unsupported dtype " + dtype);
}
#endif

}  // namespace

void bind_masked_inputs(py::module_& m) {
  m.def("mask_blend_cpu", &mask_blend_cpu);
  m.def("rank_reveal_cpu", &rank_reveal_cpu);
#ifdef FASTCAM_WITH_CUDA
  m.def("mask_blend_cuda", &mask_blend_cuda);
  m.def("rank_reveal_cuda", &rank_reveal_cuda);
#endif
}
