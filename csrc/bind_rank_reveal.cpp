// Python bindings of the rank_reveal kernels: fastcam._C.cpu.rank_reveal (OpenMP)
// and, when built, fastcam._C.cuda.rank_reveal, named as the C++ functions.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bind.h"
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

namespace cpu_entry {

void rank_reveal(std::uintptr_t src, std::uintptr_t dst, std::uintptr_t rank,
                 std::uintptr_t counts, std::uintptr_t index, std::uintptr_t mean,
                 std::uintptr_t inv_std, std::uintptr_t out, int64_t n, int64_t C, int64_t HW,
                 int num_threads, const std::string& dtype) {
  py::gil_scoped_release nogil;
  FASTCAM_DISPATCH(dtype, fastcam::cpu::rank_reveal<T>(
                              cp<T>(src), cp<T>(dst), cp<int64_t>(rank), cp<int64_t>(counts),
                              cp<int64_t>(index), cp<T>(mean), cp<T>(inv_std), mp<T>(out), n, C,
                              HW, num_threads));
}

}  // namespace cpu_entry

#ifdef FASTCAM_WITH_CUDA
// The CUDA version: the same arguments as the CPU one, with the stream
// (torch.cuda.current_stream().cuda_stream) in place of num_threads.
// Asynchronous on `stream`: the GIL is held only while the kernel is queued.
namespace cuda_entry {

void rank_reveal(std::uintptr_t src, std::uintptr_t dst, std::uintptr_t rank,
                 std::uintptr_t counts, std::uintptr_t index, std::uintptr_t mean,
                 std::uintptr_t inv_std, std::uintptr_t out, int64_t n, int64_t C, int64_t HW,
                 std::uintptr_t stream, const std::string& dtype) {
  fastcam::cuda::require_device();
  FASTCAM_DISPATCH(dtype, fastcam::cuda::rank_reveal<T>(
                              cp<T>(src), cp<T>(dst), cp<int64_t>(rank), cp<int64_t>(counts),
                              cp<int64_t>(index), cp<T>(mean), cp<T>(inv_std), mp<T>(out), n, C,
                              HW, stream));
}

}  // namespace cuda_entry
#endif

}  // namespace

void bind_rank_reveal(py::module_& cpu, py::module_* cuda) {
  cpu.def("rank_reveal", &cpu_entry::rank_reveal);
#ifdef FASTCAM_WITH_CUDA
  cuda->def("rank_reveal", &cuda_entry::rank_reveal);
#else
  (void)cuda;
#endif
}
