// OpenMP kernels of cam_combine: sum_k w_k A_k -> ReLU -> bilinear upsampling
// -> per-map min-max, fused, and its exact backward. One map per loop
// iteration; the upsampled map is written once and rescaled while it is still
// in cache. The definition is fastcam/kernels/reference.py.
#include "cam_combine.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "../common/cam_math.h"

namespace fastcam::cpu {
namespace {

template <typename T>
std::vector<LerpTap<T>> taps(int64_t in, int64_t out, bool align_corners) {
  std::vector<LerpTap<T>> t(out);
  for (int64_t i = 0; i < out; ++i) t[i] = bilinear_tap<T>(int(i), int(in), int(out), align_corners);
  return t;
}

// s[p] = sum_k wt[k] * A[k, p]; accumulated in k order, vectorised over p.
template <typename T>
void weighted_sum(const T* A, const T* wt, T* s, int64_t K, int64_t hw) {
  std::fill(s, s + hw, T(0));
  for (int64_t k = 0; k < K; ++k) {
    const T wk = wt[k];
    if (wk == T(0)) continue;
    const T* a = A + k * hw;
#pragma omp simd
    for (int64_t p = 0; p < hw; ++p) s[p] += wk * a[p];
  }
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
#pragma omp parallel num_threads(num_threads)
  {
    std::vector<T> r(hw), rows(h * W);  // ReLU'd low-res map; rows upsampled along x
#pragma omp for schedule(static)
    for (int64_t m = 0; m < maps; ++m) {
      const int64_t b = m / G;
      T* s = s_low + m * hw;
      weighted_sum(A + b * K * hw, wt + m * K, s, K, hw);
      for (int64_t p = 0; p < hw; ++p) r[p] = relu ? std::max(s[p], T(0)) : s[p];
      // Horizontal pass once per low-res row; each output row then mixes two of
      // them, in the same order ATen evaluates the bilinear formula.
      for (int64_t y = 0; y < h; ++y)
        for (int64_t j = 0; j < W; ++j)
          rows[y * W + j] = tx[j].l0 * r[y * w + tx[j].i0] + tx[j].l1 * r[y * w + tx[j].i1];
      T* o = out + m * HW;
      T lo = std::numeric_limits<T>::infinity(), hi = -lo;
      for (int64_t i = 0; i < H; ++i) {
        const T* r0 = rows.data() + ty[i].i0 * W;
        const T* r1 = rows.data() + ty[i].i1 * W;
        const T l0 = ty[i].l0, l1 = ty[i].l1;
        T* oi = o + i * W;
#pragma omp simd reduction(min : lo) reduction(max : hi)
        for (int64_t j = 0; j < W; ++j) {
          const T v = l0 * r0[j] + l1 * r1[j];
          oi[j] = v;
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
      }
      const T range = hi - lo;
      stats[2 * m] = lo;
      stats[2 * m + 1] = range;
      if (normalize) {
#pragma omp simd
        for (int64_t q = 0; q < HW; ++q) o[q] = minmax_scale(o[q], lo, range);
      }
    }
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
