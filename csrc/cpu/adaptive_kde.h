#pragma once
#include <cstdint>

namespace fastcam::cpu {

// Locally adaptive kernel density estimates (Shimazaki & Shinomoto's ssvkernel,
// Gauss window) of N channels at once, and their peak counts. double only.
//   x (N, S): samples, the values of a row in [0, 1] are its sample;
//   density (N, Z): the estimate on linspace(0, 1, Z) (zeros where there is no
//   estimate); peaks (N): its number of interior local maxima (0 there).
// M candidate bandwidths, at most max_iter golden-section steps of tolerance tol.
// One channel per OpenMP loop iteration, thread-local scratch. The definition
// is fastcam/kernels/reference/adaptive_kde.py; the per-channel math
// csrc/common/adaptive_kde_math.h.
void adaptive_kde(const double* x, double* density, int64_t* peaks, int64_t N, int64_t S,
                  int64_t Z, int M, int max_iter, double tol, int num_threads);

}  // namespace fastcam::cpu
