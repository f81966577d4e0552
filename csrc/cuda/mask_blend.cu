// CUDA kernels of mask_blend: a chunk of perturbed model inputs built from
// low-resolution maps, already normalised for the model. The definition is
// fastcam/kernels/reference/mask_blend.py; this mirrors csrc/cpu/mask_blend.cpp
// and uses the same per-element math (csrc/common/bilinear.h: bilinear_tap, and
// bilinear_mix, the formula the OpenMP kernel evaluates separably;
// csrc/common/mask_blend_math.h: mask_scale, blend_pixel).
//
// Two launches:
//   1. map_minmax_kernel: one block per map j (a grid-stride loop over maps when
//      n exceeds the grid cap). The low-res map is staged in shared memory when
//      it fits beside the kernel's static reduction array (by the function's
//      attributes); threads stride over the H*W output pixels evaluating the
//      bilinear upsampling u (nothing of size H*W is stored) and keep a running
//      min/max; a block reduction (warp shuffles + shared memory) gives
//      stats[j] = (min u, max u - min u).
//   2. mask_blend_kernel: a 1-D grid over (map, pixel tile) (tiles of
//      kFlatThreads consecutive pixels of one H*W plane; grid-stride past the
//      grid cap, so neither n nor H*W meets CUDA's 65535 limit on grid.y). Each
//      thread recomputes u for its pixel with the same device function as
//      kernel 1 (four gathers from the small, cache-resident map: cheaper than
//      writing and re-reading an (n, H*W) mask), scales it once,
//      m = mask_scale(u, lo, range, eps), and writes all C channels
//      blend_pixel(x, b, m, mean[c], inv_std[c]) of image index[j]. A warp's
//      loads and stores are 32 consecutive elements of one channel (coalesced).
// Element offsets are int64 (n*C*H*W may exceed 2^31).
#include "mask_blend.cuh"

#include <cuda_runtime.h>

#include <climits>
#include <stdexcept>
#include <string>

#include "../common/bilinear.h"
#include "../common/mask_blend_math.h"
#include "kernel_utils.cuh"

namespace fastcam::cuda {
namespace {

using namespace detail;

// Output pixel q = i * W + j of the bilinear upsampling (H,W) <- (h,w) of the
// low-res map `map` (row-major h x w), with ATen's taps and evaluation order.
// Both mask_blend kernels evaluate u through this function, so the u scaled by
// kernel 2 is the u whose min/max kernel 1 took.
template <typename T>
__device__ __forceinline__ T upsampled(const T* __restrict__ map, int q, int h, int w, int H,
                                       int W, bool align_corners) {
  const int i = q / W, j = q - i * W;
  const LerpTap<T> ty = bilinear_tap<T>(i, h, H, align_corners);
  const LerpTap<T> tx = bilinear_tap<T>(j, w, W, align_corners);
  const T* r0 = map + ty.i0 * w;
  const T* r1 = map + ty.i1 * w;
  return bilinear_mix(r0[tx.i0], r0[tx.i1], r1[tx.i0], r1[tx.i1], ty, tx);
}

template <typename T>
__global__ void __launch_bounds__(kMapThreads)
    map_minmax_kernel(const T* __restrict__ maps, T* __restrict__ stats, int64_t n, int h, int w,
                      int H, int W, bool align_corners, bool map_in_smem) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ T red[kWarp];
  const int hw = h * w, HW = H * W;
  for (int64_t j = blockIdx.x; j < n; j += gridDim.x) {  // block-uniform loop
    const T* src = maps + j * hw;
    if (map_in_smem) {
      T* r = reinterpret_cast<T*>(smem_raw);
      // The previous map's readers have all passed block_reduce's barriers.
      for (int p = threadIdx.x; p < hw; p += blockDim.x) r[p] = src[p];
      __syncthreads();
      src = r;
    }
    T lo = pos_inf<T>(), hi = -pos_inf<T>();
    for (int q = threadIdx.x; q < HW; q += blockDim.x) {
      const T v = upsampled(src, q, h, w, H, W, align_corners);
      lo = MinOp()(lo, v);
      hi = MaxOp()(hi, v);
    }
    lo = block_reduce(lo, MinOp(), pos_inf<T>(), red);
    hi = block_reduce(hi, MaxOp(), -pos_inf<T>(), red);
    if (threadIdx.x == 0) {
      stats[2 * j] = lo;
      stats[2 * j + 1] = hi - lo;
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kFlatThreads)
    mask_blend_kernel(const T* __restrict__ x, const T* __restrict__ baseline,
                      const T* __restrict__ maps, const int64_t* __restrict__ index,
                      const T* __restrict__ mean, const T* __restrict__ inv_std,
                      const T* __restrict__ stats, T* __restrict__ out, int64_t C, int h, int w,
                      int H, int W, int64_t tiles, int64_t n_blocks, T eps,
                      bool align_corners) {
  const int64_t HW = int64_t(H) * W;
  for (int64_t blk = blockIdx.x; blk < n_blocks; blk += gridDim.x) {
    const int64_t j = blk / tiles;
    const int64_t p = (blk - j * tiles) * kFlatThreads + threadIdx.x;
    if (p >= HW) continue;  // no barrier in this kernel
    const T u = upsampled(maps + j * int64_t(h) * w, int(p), h, w, H, W, align_corners);
    const T m = mask_scale(u, stats[2 * j], stats[2 * j + 1], eps);
    const int64_t b = index[j];
    const T* xp = x + b * C * HW + p;
    const T* bp = baseline ? baseline + b * C * HW + p : nullptr;
    T* op = out + j * C * HW + p;
#pragma unroll 4
    for (int64_t c = 0; c < C; ++c) {
      const T mu = mean ? mean[c] : T(0), is = inv_std ? inv_std[c] : T(1);
      const T bv = bp ? bp[c * HW] : T(0);
      op[c * HW] = blend_pixel(xp[c * HW], bv, m, mu, is);
    }
  }
}

}  // namespace

template <typename T>
void mask_blend(const T* x, const T* baseline, const T* maps, const int64_t* index,
                const T* mean, const T* inv_std, T* out, T* stats, int64_t n, int64_t C,
                int64_t H, int64_t W, int64_t h, int64_t w, T eps, bool align_corners,
                std::uintptr_t stream) {
  if (n < 0 || C < 0 || H < 0 || W < 0 || h < 0 || w < 0)
    throw std::invalid_argument("fastcam CUDA mask_blend: negative size");
  const int64_t HW = H * W, hw = h * w;
  if (n == 0 || C == 0 || HW == 0) return;
  if (HW > INT_MAX || hw > INT_MAX)
    throw std::invalid_argument("fastcam CUDA mask_blend: an image or map has more than "
                                "2^31 - 1 pixels");
  const cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);

  const size_t map_bytes = size_t(hw) * sizeof(T);
  const bool map_in_smem = dynamic_smem_fits(map_minmax_kernel<T>, map_bytes);
  map_minmax_kernel<T>
      <<<grid_blocks(n, 1), map_threads(HW), map_in_smem ? map_bytes : 0, st>>>(
          maps, stats, n, int(h), int(w), int(H), int(W), align_corners, map_in_smem);
  check_launch("mask_blend/map_minmax");

  const int64_t tiles = (HW + kFlatThreads - 1) / kFlatThreads;
  const int64_t n_blocks = n * tiles;
  mask_blend_kernel<T><<<grid_blocks(n_blocks, 1), kFlatThreads, 0, st>>>(
      x, baseline, maps, index, mean, inv_std, stats, out, C, int(h), int(w), int(H), int(W),
      tiles, n_blocks, eps, align_corners);
  check_launch("mask_blend/blend");
}

#define FASTCAM_CUDA_INSTANTIATE(T)                                                            \
  template void mask_blend<T>(const T*, const T*, const T*, const int64_t*, const T*,         \
                              const T*, T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t,   \
                              int64_t, T, bool, std::uintptr_t);
FASTCAM_CUDA_INSTANTIATE(float)
FASTCAM_CUDA_INSTANTIATE(double)

}  // namespace fastcam::cuda
