// Python bindings of the rank_reveal kernels, OpenMP and (when built) CUDA.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "cpu/rank_reveal.h"
#include "dispatch.h"
#ifdef FASTCAM_WITH_CUDA
#include "cuda/device.cuh"
#include "cuda/rank_reveal.cuh"
#endif

namespace py = pybind11;

namespace {

using fastcam::cp;
using fastcam::mp;

void rank_reveal_cpu(std::uintptr_t src, std::uintptr_t dst, std::uintptr_t rank,
                     std::uintptr_t counts, std::uintptr_t index, std::uintptr_t mean,
                     std::uintptr_t inv_std, std::uintptr_t out, int64_t n, int64_t C,
                     int64_t HW, int num_threads, const std::string& dtype) {
  py::gil_scoped_release nogil;
  FASTCAM_DISPATCH(dtype, fastcam::cpu::rank_reveal<T>(
                              cp<T>(src), cp<T>(dst), cp<int64_t>(rank), cp<int64_t>(counts),
                              cp<int64_t>(index), cp<T>(mean), cp<T>(inv_std), mp<T>(out), n, C,
                              HW, num_threads));
}

#ifdef FASTCAM_WITH_CUDA
// The CUDA version: the same arguments as rank_reveal_cpu, with the stream
// (torch.cuda.current_stream().cuda_stream) in place of num_threads.
// Asynchronous on `stream`: the GIL is held only while the kernel is queued.
void rank_reveal_cuda(std::uintptr_t src, std::uintptr_t dst, std::uintptr_t rank,
                      std::uintptr_t counts, std::uintptr_t index, std::uintptr_t mean,
                      std::uintptr_t inv_std, std::uintptr_t out, int64_t n, int64_t C,
                      int64_t HW, std::uintptr_t stream, const std::string& dtype) {
  fastcam::cuda::require_device();
  FASTCAM_DISPATCH(dtype, fastcam::cuda::rank_reveal<T>(
                              cp<T>(src), cp<T>(dst), cp<int64_t>(rank), cp<int64_t>(counts),
                              cp<int64_t>(index), cp<T>(mean), cp<T>(inv_std), mp<T>(out), n, C,
                              HW, stream));
}
#endif

}  // namespace

void bind_rank_reveal(py::module_& m) {
  m.def("rank_reveal_cpu", &rank_reveal_cpu);
#ifdef FASTCAM_WITH_CUDA
  m.def("rank_reveal_cuda", &rank_reveal_cuda);
#endif
}
