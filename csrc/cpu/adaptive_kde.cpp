// OpenMP kernel of adaptive_kde: N small 1-D locally adaptive KDEs (ssvkernel),
// one channel per loop iteration. Two passes: (1) each channel's internal grid
// size L (almost always Z), (2) the estimate. The tables that depend only on L
// (bandwidths, periodised smoothing kernels) are built once per distinct L
// between the passes and shared read-only. The definition is
// fastcam/kernels/reference/adaptive_kde.py; all per-channel maths is in
// csrc/common/adaptive_kde_math.h (adaptive_kde_channel), shared with the CUDA kernel.
// GCC: let the vectoriser if-convert floating-point code (adaptive_kde_exp's clamp);
// nothing here relies on floating-point exceptions.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "adaptive_kde.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "../common/adaptive_kde_math.h"

// The per-channel work is compiled for AVX-512 and AVX2 as well as baseline
// x86-64 (flattened, so the exp and sum loops vectorise for the clone's ISA),
// and the best one the CPU supports is picked at load time (GCC function clones).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FASTCAM_ADAPTIVE_KDE_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), flatten))
#elif defined(__GNUC__)
#define FASTCAM_ADAPTIVE_KDE_CLONES __attribute__((flatten))
#else
#define FASTCAM_ADAPTIVE_KDE_CLONES
#endif

namespace fastcam::cpu {
namespace {

FASTCAM_ADAPTIVE_KDE_CLONES int run_channel(const double* x, int S, int Z,
                                            const AdaptiveKdeTables& tb, int M, int max_iter,
                                            double tol, double* scratch, double* density) {
  return adaptive_kde_channel(x, S, Z, tb, M, max_iter, tol, scratch, density);
}

struct TableStore {
  std::vector<double> W, ext, gext;
  AdaptiveKdeTables tables;
};

}  // namespace

void adaptive_kde(const double* x, double* density, int64_t* peaks, int64_t N, int64_t S,
                  int64_t Z, int M, int max_iter, double tol, int num_threads) {
  if (M < 2) throw std::invalid_argument("adaptive_kde: M must be at least 2");
  // Pass 1: internal grid sizes (0: no estimate).
  std::vector<int> grid(N);
#pragma omp parallel for schedule(dynamic, 64) num_threads(num_threads)
  for (int64_t c = 0; c < N; ++c)
    grid[c] = adaptive_kde_grid_size(x + c * S, int(S), int(Z), kAdaptiveKdeMaxGrid);
  // Tables per distinct grid size.
  std::vector<int> sizes;
  for (int L : grid)
    if (L > 0) sizes.push_back(L);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  const int max_L = sizes.empty() ? 0 : sizes.back();
  std::vector<int> slot(max_L + 1, -1);
  std::vector<TableStore> store(sizes.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
  for (int64_t s = 0; s < int64_t(sizes.size()); ++s) {
    const int L = sizes[s];
    TableStore& ts = store[s];
    ts.W.resize(M);
    ts.ext.resize(int64_t(M) * (2 * L - 1));
    ts.gext.resize(int64_t(M) * (2 * L - 1));
    ts.tables.L = L;
    ts.tables.dt = adaptive_kde_fill_tables(L, M, ts.W.data(), ts.ext.data(), ts.gext.data());
    ts.tables.W = ts.W.data();
    ts.tables.ext = ts.ext.data();
    ts.tables.gext = ts.gext.data();
    ts.tables.Wmin = *std::min_element(ts.W.begin(), ts.W.end());
    ts.tables.Wmax = *std::max_element(ts.W.begin(), ts.W.end());
  }
  for (size_t s = 0; s < sizes.size(); ++s) slot[sizes[s]] = int(s);
  // Pass 2: the estimates.
#pragma omp parallel num_threads(num_threads)
  {
    std::vector<double> scratch(max_L > 0 ? adaptive_kde_scratch_size(max_L, M) : 0);
#pragma omp for schedule(dynamic, 4)
    for (int64_t c = 0; c < N; ++c) {
      double* out = density + c * Z;
      const int L = grid[c];
      if (L == 0) {
        std::fill(out, out + Z, 0.0);
        peaks[c] = 0;
        continue;
      }
      peaks[c] = run_channel(x + c * S, int(S), int(Z), store[slot[L]].tables, M, max_iter,
                             tol, scratch.data(), out);
    }
  }
}

}  // namespace fastcam::cpu
