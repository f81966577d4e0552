// Python binding of the adaptive_kde CPU kernel (batched ssvkernel + peak counts).
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>

#include "cpu/adaptive_kde.h"

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

}  // namespace

void bind_adaptive_kde(py::module_& m) {
  m.def("adaptive_kde_cpu", &adaptive_kde_cpu,
        "Batched locally adaptive KDE (ssvkernel) on linspace(0,1,Z) and peak counts (float64).");
}
