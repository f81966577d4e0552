// OpenMP kernels of cam_combine: sum_k w_k A_k -> ReLU -> bilinear upsampling
// -> per-map min-max, fused, and its exact backward. One map per loop
// iteration; the upsampled map is written once and rescaled while it is still
// in cache. The definition is fastcam/kernels/reference/cam_combine.py.
#include "cam_combine.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "../common/bilinear.h"
#include "../common/cam_combine_math.h"

// Hot loops are compiled for AVX-512 and AVX2 as well as baseline x86-64, and
// the best one the CPU supports is picked at load time (GCC function clones).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FASTCAM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTCAM_CLONES
#endif
#define FASTCAM_INLINE inline __attribute__((always_inline))

namespace fastcam::cpu {
namespace {

template <typename T>
std::vector<LerpTap<T>> taps(int64_t in, int64_t out, bool align_corners) {
  std::vector<LerpTap<T>> t(out);
  for (int64_t i = 0; i < out; ++i) t[i] = bilinear_tap<T>(int(i), int(in), int(out), align_corners);
  return t;
}

// Output indices that are the first or last of a run sharing the same source
// cell (i0, i1): the only candidates for a map's minimum and maximum.
template <typename T>
std::vector<int64_t> cell_ends(const std::vector<LerpTap<T>>& t) {
  std::vector<int64_t> ends;
  const int64_t n = int64_t(t.size());
  for (int64_t i = 0; i < n; ++i) {
    const bool first = i == 0 || t[i].i0 != t[i - 1].i0 || t[i].i1 != t[i - 1].i1;
    const bool last = i == n - 1 || t[i].i0 != t[i + 1].i0 || t[i].i1 != t[i + 1].i1;
    if (first || last) ends.push_back(i);
  }
  return ends;
}

// s[p] = sum_k wt[k] * A[k, p]. Blocks of P positions stay in registers while
// the K rows stream past, so each element of A is read once from memory.
template <typename T>
FASTCAM_INLINE void weighted_sum(const T* A, const T* wt, T* s, int64_t K, int64_t hw) {
  constexpr int64_t P = 64;
  for (int64_t p0 = 0; p0 < hw; p0 += P) {
    T acc[P] = {};
    if (hw - p0 >= P) {
      for (int64_t k = 0; k < K; ++k) {
        const T wk = wt[k];
        const T* a = A + k * hw + p0;
#pragma omp simd
        for (int64_t q = 0; q < P; ++q) acc[q] += wk * a[q];
      }
      for (int64_t q = 0; q < P; ++q) s[p0 + q] = acc[q];
    } else {
      const int64_t np = hw - p0;
      for (int64_t k = 0; k < K; ++k) {
        const T wk = wt[k];
        const T* a = A + k * hw + p0;
#pragma omp simd
        for (int64_t q = 0; q < np; ++q) acc[q] += wk * a[q];
      }
      for (int64_t q = 0; q < np; ++q) s[p0 + q] = acc[q];
    }
  }
}

// One map of the forward pass: weighted sum, ReLU, separable bilinear
// upsampling with min/max, then scaling while the map is still in cache.
template <typename T>
FASTCAM_INLINE void forward_map(const T* A, const T* wt, T* o, T* s, T* stats, int64_t K,
                                int64_t h, int64_t w, int64_t H, int64_t W, bool relu,
                                bool normalize, const LerpTap<T>* ty, const LerpTap<T>* tx,
                                const int64_t* cy, int64_t ncy, const int64_t* cx, int64_t ncx,
                                T* r, T* rows) {
  const int64_t hw = h * w;
  weighted_sum(A, wt, s, K, hw);
  for (int64_t p = 0; p < hw; ++p) r[p] = relu ? std::max(s[p], T(0)) : s[p];
  // Horizontal pass once per low-res row; each output row then mixes two of
  // them, in the same order ATen evaluates the bilinear formula.
  for (int64_t y = 0; y < h; ++y)
    for (int64_t j = 0; j < W; ++j)
      rows[y * W + j] = tx[j].l0 * r[y * w + tx[j].i0] + tx[j].l1 * r[y * w + tx[j].i1];
  // Min and max first, from a few output pixels only: along each axis the
  // bilinear weights are linear inside a source cell, so over the outputs that
  // fall in one cell the extremes sit at the first and last of them (cy, cx).
  // The map is then computed, scaled and written in a single pass.
  T lo = std::numeric_limits<T>::infinity(), hi = -lo;
  for (int64_t a = 0; a < ncy; ++a) {
    const LerpTap<T>& t = ty[cy[a]];
    const T* r0 = rows + t.i0 * W;
    const T* r1 = rows + t.i1 * W;
    for (int64_t b = 0; b < ncx; ++b) {
      const T v = t.l0 * r0[cx[b]] + t.l1 * r1[cx[b]];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  const T range = hi - lo;
  stats[0] = lo;
  stats[1] = range;
  const bool scale = normalize && range > T(0);
  const T inv = scale ? T(1) / range : T(0);  // 1/range: division is several times slower
  for (int64_t i = 0; i < H; ++i) {
    const T* r0 = rows + ty[i].i0 * W;
    const T* r1 = rows + ty[i].i1 * W;
    const T l0 = ty[i].l0, l1 = ty[i].l1;
    T* oi = o + i * W;
    if (scale) {
      // The extremes map to exactly 0 and 1 (the backward pass finds ties by them)
      // and rounding never leaves [0, 1].
#pragma omp simd
      for (int64_t j = 0; j < W; ++j) {
        const T v = l0 * r0[j] + l1 * r1[j];
        oi[j] = v >= hi ? T(1) : (v <= lo ? T(0) : std::min((v - lo) * inv, T(1)));
      }
    } else if (normalize) {
      std::fill(oi, oi + W, T(0));  // constant map
    } else {
#pragma omp simd
      for (int64_t j = 0; j < W; ++j) oi[j] = l0 * r0[j] + l1 * r1[j];
    }
  }
}

// Non-template entry points, one per dtype, so GCC can clone each for the CPU's
// instruction set (target_clones does not apply to templates).
FASTCAM_CLONES void forward_map_cloned(const float* A, const float* wt, float* o, float* s,
                                       float* st, int64_t K, int64_t h, int64_t w, int64_t H,
                                       int64_t W, bool relu, bool normalize,
                                       const LerpTap<float>* ty, const LerpTap<float>* tx,
                                       const int64_t* cy, int64_t ncy, const int64_t* cx,
                                       int64_t ncx, float* r, float* rows) {
  forward_map(A, wt, o, s, st, K, h, w, H, W, relu, normalize, ty, tx, cy, ncy, cx, ncx, r, rows);
}

FASTCAM_CLONES void forward_map_cloned(const double* A, const double* wt, double* o, double* s,
                                       double* st, int64_t K, int64_t h, int64_t w, int64_t H,
                                       int64_t W, bool relu, bool normalize,
                                       const LerpTap<double>* ty, const LerpTap<double>* tx,
                                       const int64_t* cy, int64_t ncy, const int64_t* cx,
                                       int64_t ncx, double* r, double* rows) {
  forward_map(A, wt, o, s, st, K, h, w, H, W, relu, normalize, ty, tx, cy, ncy, cx, ncx, r, rows);
}

}  // namespace

template <typename T>
void cam_combine_forward(const T* A, const T* wt, T* out, T* s_low, T* stats,
                         int64_t B, int64_t G, int64_t K, int64_t h, int64_t w,
                         int64_t H, int64_t W, bool relu, bool normalize,
                         bool align_corners, int num_threads) {
  const int64_t hw = h * w, HW = H * W, maps = B * G;
  const auto ty = taps<T>(h, H, align_corners);
  const auto tx = taps<T>(w, W, align_corners);
  const auto cy = cell_ends(ty), cx = cell_ends(tx);
#pragma omp parallel num_threads(num_threads)
  {
    std::vector<T> r(hw), rows(h * W);  // ReLU'd low-res map; rows upsampled along x
#pragma omp for schedule(static)
    for (int64_t m = 0; m < maps; ++m)
      forward_map_cloned(A + (m / G) * K * hw, wt + m * K, out + m * HW, s_low + m * hw,
                      stats + 2 * m, K, h, w, H, W, relu, normalize, ty.data(), tx.data(),
                      cy.data(), int64_t(cy.size()), cx.data(), int64_t(cx.size()), r.data(),
                      rows.data());
  }
}

template <typename T>
void cam_combine_backward(const T* grad_out, const T* out, const T* A, const T* wt,
                          const T* s_low, const T* stats, T* grad_A, T* grad_wt,
                          int64_t B, int64_t G, int64_t K, int64_t h, int64_t w,
                          int64_t H, int64_t W, bool relu, bool normalize,
                          bool align_corners, int num_threads) {
  const int64_t hw = h * w, HW = H * W, maps = B * G;
  const auto ty = taps<T>(h, H, align_corners);
  const auto tx = taps<T>(w, W, align_corners);
  std::vector<T> g_s(maps * hw);  // gradient w.r.t. the pre-ReLU low-res sum
#pragma omp parallel num_threads(num_threads)
  {
    std::vector<T> g_row(W), g_hrow(w);
#pragma omp for schedule(static)
    for (int64_t m = 0; m < maps; ++m) {
      const T* g = grad_out + m * HW;
      const T* y = out + m * HW;
      const T range = stats[2 * m + 1];
      T* gs = g_s.data() + m * hw;
      std::fill(gs, gs + hw, T(0));
      if (normalize && !(range > T(0))) continue;  // constant map: zero gradient
      T lo_share = 0, hi_share = 0;
      if (normalize) {
        double g_lo = 0, g_hi = 0;
        int64_t n_lo = 0, n_hi = 0;
        for (int64_t q = 0; q < HW; ++q) {
          g_lo += double(g[q]) * (double(y[q]) - 1.0);
          g_hi -= double(g[q]) * double(y[q]);
          n_lo += y[q] == T(0);
          n_hi += y[q] == T(1);
        }
        lo_share = n_lo ? T(g_lo / double(range) / double(n_lo)) : T(0);
        hi_share = n_hi ? T(g_hi / double(range) / double(n_hi)) : T(0);
      }
      // Adjoint of the separable upsampling: columns first, then rows.
      for (int64_t i = 0; i < H; ++i) {
        for (int64_t j = 0; j < W; ++j)
          g_row[j] = normalize ? minmax_grad(g[i * W + j], y[i * W + j], range, lo_share, hi_share)
                               : g[i * W + j];
        std::fill(g_hrow.begin(), g_hrow.end(), T(0));
        for (int64_t j = 0; j < W; ++j) {
          g_hrow[tx[j].i0] += tx[j].l0 * g_row[j];
          g_hrow[tx[j].i1] += tx[j].l1 * g_row[j];
        }
        T* d0 = gs + ty[i].i0 * w;
        T* d1 = gs + ty[i].i1 * w;
        for (int64_t x = 0; x < w; ++x) {
          d0[x] += ty[i].l0 * g_hrow[x];
          d1[x] += ty[i].l1 * g_hrow[x];
        }
      }
      if (relu) {
        const T* s = s_low + m * hw;
        for (int64_t p = 0; p < hw; ++p)
          if (!(s[p] > T(0))) gs[p] = T(0);
      }
    }

    if (grad_wt) {
#pragma omp for schedule(static) collapse(2)
      for (int64_t m = 0; m < maps; ++m)
        for (int64_t k = 0; k < K; ++k) {
          const T* a = A + ((m / G) * K + k) * hw;
          const T* gs = g_s.data() + m * hw;
          T acc = 0;
#pragma omp simd reduction(+ : acc)
          for (int64_t p = 0; p < hw; ++p) acc += gs[p] * a[p];
          grad_wt[m * K + k] = acc;
        }
    }
    if (grad_A) {
#pragma omp for schedule(static) collapse(2)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t k = 0; k < K; ++k) {
          T* ga = grad_A + (b * K + k) * hw;
          std::fill(ga, ga + hw, T(0));
          for (int64_t gi = 0; gi < G; ++gi) {
            const T wk = wt[(b * G + gi) * K + k];
            const T* gs = g_s.data() + (b * G + gi) * hw;
#pragma omp simd
            for (int64_t p = 0; p < hw; ++p) ga[p] += wk * gs[p];
          }
        }
    }
  }
}

#define FASTCAM_INSTANTIATE(T)                                                                   \
  template void cam_combine_forward<T>(const T*, const T*, T*, T*, T*, int64_t, int64_t,       \
                                       int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, \
                                       bool, int);                                              \
  template void cam_combine_backward<T>(const T*, const T*, const T*, const T*, const T*,      \
                                        const T*, T*, T*, int64_t, int64_t, int64_t, int64_t,  \
                                        int64_t, int64_t, int64_t, bool, bool, bool, int);
FASTCAM_INSTANTIATE(float)
FASTCAM_INSTANTIATE(double)

}  // namespace fastcam::cpu
