// CUDA kernel of rank_reveal: a chunk of perturbed model inputs revealing
// pixels in a given order (RISE insertion / deletion), already normalised for
// the model. The definition is fastcam/kernels/reference/rank_reveal.py; this mirrors
// csrc/cpu/rank_reveal.cpp. One launch:
//   rank_reveal_kernel: a 1-D grid over (copy, pixel tile) (tiles of
//   kFlatThreads consecutive pixels of one H*W plane, grid-stride past the grid
//   cap); each thread reads rank[index[j], p] once, keep = rank < counts[j],
//   then for every channel loads only the selected source (src where kept, else
//   dst; a null one is 0) and writes (v - mean[c]) * inv_std[c], as the OpenMP
//   kernel. Element offsets are int64 (n*C*H*W may exceed 2^31).
#include "rank_reveal.cuh"

#include <cuda_runtime.h>

#include <stdexcept>

#include "kernel_utils.cuh"

namespace fastcam::cuda {
namespace {

using namespace detail;

template <typename T>
__global__ void __launch_bounds__(kFlatThreads)
    rank_reveal_kernel(const T* __restrict__ src, const T* __restrict__ dst,
                       const int64_t* __restrict__ rank, const int64_t* __restrict__ counts,
                       const int64_t* __restrict__ index, const T* __restrict__ mean,
                       const T* __restrict__ inv_std, T* __restrict__ out, int64_t C, int64_t HW,
                       int64_t tiles, int64_t n_blocks) {
  for (int64_t blk = blockIdx.x; blk < n_blocks; blk += gridDim.x) {
    const int64_t j = blk / tiles;
    const int64_t p = (blk - j * tiles) * kFlatThreads + threadIdx.x;
    if (p >= HW) continue;
    const int64_t b = index[j];
    const bool keep = rank[b * HW + p] < counts[j];
    const T* sel = keep ? src : dst;  // null: zeros
    const T* sp = sel ? sel + b * C * HW + p : nullptr;
    T* op = out + j * C * HW + p;
#pragma unroll 4
    for (int64_t c = 0; c < C; ++c) {
      const T mu = mean ? mean[c] : T(0), is = inv_std ? inv_std[c] : T(1);
      const T v = sp ? sp[c * HW] : T(0);
      op[c * HW] = (v - mu) * is;
    }
  }
}

}  // namespace

template <typename T>
void rank_reveal(const T* src, const T* dst, const int64_t* rank, const int64_t* counts,
                 const int64_t* index, const T* mean, const T* inv_std, T* out, int64_t n,
                 int64_t C, int64_t HW, std::uintptr_t stream) {
  if (n < 0 || C < 0 || HW < 0)
    throw std::invalid_argument("fastcam CUDA rank_reveal: negative size");
  if (n == 0 || C == 0 || HW == 0) return;
  const cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  const int64_t tiles = (HW + kFlatThreads - 1) / kFlatThreads;
  const int64_t n_blocks = n * tiles;
  rank_reveal_kernel<T><<<grid_blocks(n_blocks, 1), kFlatThreads, 0, st>>>(
      src, dst, rank, counts, index, mean, inv_std, out, C, HW, tiles, n_blocks);
  check_launch("rank_reveal");
}

#define FASTCAM_CUDA_INSTANTIATE(T)                                                           \
  template void rank_reveal<T>(const T*, const T*, const int64_t*, const int64_t*,          \
                               const int64_t*, const T*, const T*, T*, int64_t, int64_t,    \
                               int64_t, std::uintptr_t);
FASTCAM_CUDA_INSTANTIATE(float)
FASTCAM_CUDA_INSTANTIATE(double)

}  // namespace fastcam::cuda
