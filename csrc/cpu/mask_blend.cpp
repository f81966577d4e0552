// OpenMP kernel of mask_blend: a chunk of perturbed model inputs built from
// low-resolution maps on the fly, so a caller never materialises all K copies;
// each chunk is written once, already normalised for the model. Definition:
// fastcam/kernels/reference/mask_blend.py. One map per loop iteration: its upsampling
// (separable: a horizontal pass per low-res row, then a mix of two rows per
// output row, ATen's order), its min/max, then all C channels of the copy.
#include "mask_blend.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "../common/bilinear.h"
#include "../common/mask_blend_math.h"

namespace fastcam::cpu {

template <typename T>
void mask_blend(const T* x, const T* baseline, const T* maps, const int64_t* index,
                const T* mean, const T* inv_std, T* out, int64_t n, int64_t C, int64_t H,
                int64_t W, int64_t h, int64_t w, T eps, bool align_corners, int num_threads) {
  const int64_t HW = H * W, hw = h * w;
  std::vector<LerpTap<T>> ty(H), tx(W);
  for (int64_t i = 0; i < H; ++i) ty[i] = bilinear_tap<T>(int(i), int(h), int(H), align_corners);
  for (int64_t j = 0; j < W; ++j) tx[j] = bilinear_tap<T>(int(j), int(w), int(W), align_corners);
#pragma omp parallel num_threads(num_threads)
  {
    std::vector<T> rows(h * W), m(HW);
#pragma omp for schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      const T* map = maps + j * hw;
      for (int64_t y = 0; y < h; ++y)
        for (int64_t q = 0; q < W; ++q)
          rows[y * W + q] = tx[q].l0 * map[y * w + tx[q].i0] + tx[q].l1 * map[y * w + tx[q].i1];
      T lo = std::numeric_limits<T>::infinity(), hi = -lo;
      for (int64_t i = 0; i < H; ++i) {
        const T* r0 = rows.data() + ty[i].i0 * W;
        const T* r1 = rows.data() + ty[i].i1 * W;
        T* mi = m.data() + i * W;
#pragma omp simd reduction(min : lo) reduction(max : hi)
        for (int64_t q = 0; q < W; ++q) {
          const T v = ty[i].l0 * r0[q] + ty[i].l1 * r1[q];
          mi[q] = v;
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
      }
      const T range = hi - lo;
#pragma omp simd
      for (int64_t p = 0; p < HW; ++p) m[p] = mask_scale(m[p], lo, range, eps);
      const int64_t b = index[j];
      for (int64_t c = 0; c < C; ++c) {
        const T* xc = x + (b * C + c) * HW;
        const T* bc = baseline ? baseline + (b * C + c) * HW : nullptr;
        const T mu = mean ? mean[c] : T(0), is = inv_std ? inv_std[c] : T(1);
        T* oc = out + (j * C + c) * HW;
        if (bc) {
#pragma omp simd
          for (int64_t p = 0; p < HW; ++p) oc[p] = blend_pixel(xc[p], bc[p], m[p], mu, is);
        } else {
#pragma omp simd
          for (int64_t p = 0; p < HW; ++p) oc[p] = blend_pixel(xc[p], T(0), m[p], mu, is);
        }
      }
    }
  }
}

#define FASTCAM_INSTANTIATE(T)                                                                  \
  template void mask_blend<T>(const T*, const T*, const T*, const int64_t*, const T*, const T*, \
                              T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, T, bool, \
                              int);
FASTCAM_INSTANTIATE(float)
FASTCAM_INSTANTIATE(double)

}  // namespace fastcam::cpu
