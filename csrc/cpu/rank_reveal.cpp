// OpenMP kernel of rank_reveal: a chunk of perturbed model inputs revealing
// pixels in a given order (RISE insertion / deletion), already normalised for
// the model. Definition: fastcam/kernels/reference/rank_reveal.py.
#include "rank_reveal.h"

namespace fastcam::cpu {

template <typename T>
void rank_reveal(const T* src, const T* dst, const int64_t* rank, const int64_t* counts,
                 const int64_t* index, const T* mean, const T* inv_std, T* out, int64_t n,
                 int64_t C, int64_t HW, int num_threads) {
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads)
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t b = index[j], k = counts[j];
      const int64_t* r = rank + b * HW;
      const T* sc = src ? src + (b * C + c) * HW : nullptr;
      const T* dc = dst ? dst + (b * C + c) * HW : nullptr;
      const T mu = mean ? mean[c] : T(0), is = inv_std ? inv_std[c] : T(1);
      T* oc = out + (j * C + c) * HW;
#pragma omp simd
      for (int64_t p = 0; p < HW; ++p) {
        const T v = r[p] < k ? (sc ? sc[p] : T(0)) : (dc ? dc[p] : T(0));
        oc[p] = (v - mu) * is;
      }
    }
}

#define FASTCAM_INSTANTIATE(T)                                                               \
  template void rank_reveal<T>(const T*, const T*, const int64_t*, const int64_t*,          \
                               const int64_t*, const T*, const T*, T*, int64_t, int64_t,    \
                               int64_t, int);
FASTCAM_INSTANTIATE(float)
FASTCAM_INSTANTIATE(double)

}  // namespace fastcam::cpu
