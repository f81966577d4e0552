// CUDA kernels of cam_combine: sum_k w_k A_k -> ReLU -> bilinear upsampling ->
// per-map min-max, and its exact backward. The definition is
// fastcam/kernels/reference/cam_combine.py; this mirrors csrc/cpu/cam_combine.cpp and uses
// the same per-element math (csrc/common/bilinear.h, csrc/common/cam_combine_math.h).
//
// Forward, two launches:
//   1. weighted_sum_kernel: s_low[m, p] = sum_k wt[m, k] * A[b, k, p]. A block
//      is 32 consecutive pixels x 8 slices of K; each warp reads 32 consecutive
//      pixels of one channel (coalesced) and the 8 partial sums are added in
//      shared memory.
//   2. upsample_minmax_kernel: one block per map. The ReLU'd low-res map is
//      staged in shared memory (when it fits beside the kernel's static
//      reduction array, by the function's attributes), threads stride over the H*W
//      output pixels computing the bilinear value, store it and keep a running
//      min/max; a block reduction (warp shuffles + shared memory) gives the
//      stats, then each thread rescales the pixels it wrote, in place. The
//      value scaled is the value stored, so the maximum becomes exactly 1,
//      which the backward pass uses to find it.
// Backward, three launches:
//   1. upsample_backward_kernel: one block per map. A block reduction (in
//      double, like the OpenMP kernel) gives the min/max gradient shares, then
//      the adjoint of the upsampling is computed as a gather: one warp per
//      low-res cell sums, over the rectangle of output pixels whose bilinear
//      taps reach that cell, tap weight x incoming gradient. The rectangle is
//      found by binary search on bilinear_tap (tap indices are monotone in the
//      output index). No atomics: the result is deterministic and every cell is
//      written exactly once (so grad_s needs no zeroing). The ReLU mask is
//      applied as the cell is stored.
//   2. grad_wt_kernel: one warp per (map, k): dot product of grad_s and A over
//      the h*w pixels, warp-reduced.
//   3. grad_A_kernel: one thread per (b, k, pixel): sum over the G maps of
//      wt * grad_s, in g order.
#include "cam_combine.cuh"

#include <cuda_runtime.h>

#include <climits>
#include <stdexcept>
#include <string>

#include "../common/bilinear.h"
#include "../common/cam_combine_math.h"
#include "kernel_utils.cuh"

namespace fastcam::cuda {
namespace {

using namespace detail;

constexpr int kSumTileP = 32;           // pixels per weighted-sum block
constexpr int kSumSplitK = 8;           // K slices per weighted-sum block

void check_sizes(int64_t B, int64_t G, int64_t K, int64_t h, int64_t w, int64_t H, int64_t W) {
  if (B < 0 || G < 0 || K < 0)
    throw std::invalid_argument("fastcam CUDA cam_combine: negative B, G or K");
  if (B * G == 0) return;
  if (h * w > INT_MAX || H * W > INT_MAX)
    throw std::invalid_argument("fastcam CUDA cam_combine: a map has more than 2^31 - 1 pixels");
  if (B * G > INT_MAX)
    throw std::invalid_argument("fastcam CUDA cam_combine: more than 2^31 - 1 maps");
}

// Weight of low-res index c in the tap t (both taps may be c at a clamped edge).
template <typename T>
__device__ __forceinline__ T tap_weight(const LerpTap<T>& t, int c) {
  return (t.i0 == c ? t.l0 : T(0)) + (t.i1 == c ? t.l1 : T(0));
}

// The output indices whose taps reach low-res index c form the interval
// [first_tap, last_tap] (empty when first > last): i0 and i1 are nondecreasing
// in the output index, and c is reached iff i0 <= c <= i1.
template <typename T>
__device__ int first_tap(int c, int in_size, int out_size, bool align_corners) {
  int lo = 0, hi = out_size;  // first i with i1(i) >= c
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (bilinear_tap<T>(mid, in_size, out_size, align_corners).i1 >= c) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

template <typename T>
__device__ int last_tap(int c, int in_size, int out_size, bool align_corners) {
  int lo = 0, hi = out_size;  // first i with i0(i) > c, minus one
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (bilinear_tap<T>(mid, in_size, out_size, align_corners).i0 > c) hi = mid;
    else lo = mid + 1;
  }
  return lo - 1;
}

// ---------------------------------------------------------------------------
// Forward

template <typename T>
__global__ void __launch_bounds__(kSumTileP* kSumSplitK)
    weighted_sum_kernel(const T* __restrict__ A, const T* __restrict__ wt, T* __restrict__ s,
                        int64_t G, int64_t K, int64_t hw, int64_t tiles, int64_t n_blocks) {
  __shared__ T part[kSumSplitK][kSumTileP];
  for (int64_t blk = blockIdx.x; blk < n_blocks; blk += gridDim.x) {
    const int64_t m = blk / tiles;
    const int64_t p = (blk - m * tiles) * kSumTileP + threadIdx.x;
    T acc = T(0);
    if (p < hw) {
      const T* a = A + (m / G) * K * hw + p;
      const T* wm = wt + m * K;
      for (int64_t k = threadIdx.y; k < K; k += kSumSplitK) {
        const T wk = wm[k];  // the same for the whole warp
        if (wk == T(0)) continue;  // as the OpenMP kernel: 0 * inf never enters
        acc += wk * a[k * hw];
      }
    }
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && p < hw) {
      T sum = part[0][threadIdx.x];
#pragma unroll
      for (int i = 1; i < kSumSplitK; ++i) sum += part[i][threadIdx.x];
      s[m * hw + p] = sum;
    }
    __syncthreads();  // part is reused by the next tile
  }
}

template <typename T>
__global__ void __launch_bounds__(kMapThreads)
    upsample_minmax_kernel(const T* __restrict__ s_low, T* __restrict__ out,
                           T* __restrict__ stats, int h, int w, int H, int W, bool relu,
                           bool normalize, bool align_corners, bool low_in_smem) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ T red[kWarp];
  const int64_t m = blockIdx.x;
  const int hw = h * w, HW = H * W;
  const T* src = s_low + m * hw;
  bool relu_on_read = relu;
  if (low_in_smem) {  // ReLU'd low-res map, read ~4 H*W / (h*w) times per pixel
    T* r = reinterpret_cast<T*>(smem_raw);
    for (int p = threadIdx.x; p < hw; p += blockDim.x) {
      const T v = src[p];
      r[p] = relu ? MaxOp()(v, T(0)) : v;
    }
    __syncthreads();
    src = r;
    relu_on_read = false;
  }

  T* o = out + m * HW;
  T lo = pos_inf<T>(), hi = -pos_inf<T>();
  for (int q = threadIdx.x; q < HW; q += blockDim.x) {
    const int i = q / W, j = q - i * W;
    const LerpTap<T> ty = bilinear_tap<T>(i, h, H, align_corners);
    const LerpTap<T> tx = bilinear_tap<T>(j, w, W, align_corners);
    const T* r0 = src + ty.i0 * w;
    const T* r1 = src + ty.i1 * w;
    T a = r0[tx.i0], b = r0[tx.i1], c = r1[tx.i0], d = r1[tx.i1];
    if (relu_on_read) {
      a = MaxOp()(a, T(0));
      b = MaxOp()(b, T(0));
      c = MaxOp()(c, T(0));
      d = MaxOp()(d, T(0));
    }
    const T v = bilinear_mix(a, b, c, d, ty, tx);
    o[q] = v;
    lo = MinOp()(lo, v);
    hi = MaxOp()(hi, v);
  }
  lo = block_reduce(lo, MinOp(), pos_inf<T>(), red);
  hi = block_reduce(hi, MaxOp(), -pos_inf<T>(), red);
  const T range = hi - lo;
  if (threadIdx.x == 0) {
    stats[2 * m] = lo;
    stats[2 * m + 1] = range;
  }
  if (normalize) {
    // Each thread rescales the pixels it stored itself: no barrier needed.
    for (int q = threadIdx.x; q < HW; q += blockDim.x) o[q] = minmax_scale(o[q], lo, range);
  }
}

// ---------------------------------------------------------------------------
// Backward

template <typename T>
__global__ void __launch_bounds__(kMapThreads)
    upsample_backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ out,
                             const T* __restrict__ s_low, const T* __restrict__ stats,
                             T* __restrict__ grad_s, int h, int w, int H, int W, bool relu,
                             bool normalize, bool align_corners) {
  __shared__ double red_d[kWarp];
  __shared__ unsigned long long red_n[kWarp];
  const int64_t m = blockIdx.x;
  const int hw = h * w, HW = H * W;
  const T* g = grad_out + m * HW;
  const T* y = out + m * HW;
  T* gs = grad_s + m * hw;
  const T range = stats[2 * m + 1];

  if (normalize && !(range > T(0))) {  // constant map: zero gradient (uniform branch)
    for (int p = threadIdx.x; p < hw; p += blockDim.x) gs[p] = T(0);
    return;
  }
  T lo_share = T(0), hi_share = T(0);
  if (normalize) {
    // Gradients of the min and the max, spread over the tied elements.
    double g_lo = 0, g_hi = 0;
    unsigned long long n_lo = 0, n_hi = 0;
    for (int q = threadIdx.x; q < HW; q += blockDim.x) {
      const double gq = double(g[q]);
      const T yq = y[q];
      g_lo += gq * (double(yq) - 1.0);
      g_hi -= gq * double(yq);
      n_lo += yq == T(0);
      n_hi += yq == T(1);
    }
    g_lo = block_reduce(g_lo, SumOp(), 0.0, red_d);
    g_hi = block_reduce(g_hi, SumOp(), 0.0, red_d);
    n_lo = block_reduce(n_lo, SumOp(), 0ull, red_n);
    n_hi = block_reduce(n_hi, SumOp(), 0ull, red_n);
    lo_share = n_lo ? T(g_lo / double(range) / double(n_lo)) : T(0);
    hi_share = n_hi ? T(g_hi / double(range) / double(n_hi)) : T(0);
  }

  // Adjoint of the upsampling, gathered: one warp per low-res cell.
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int nwarps = blockDim.x / kWarp;
  for (int c = warp; c < hw; c += nwarps) {  // warp-uniform loop
    const int cy = c / w, cx = c - cy * w;
    const int ia = first_tap<T>(cy, h, H, align_corners);
    const int ib = last_tap<T>(cy, h, H, align_corners);
    const int ja = first_tap<T>(cx, w, W, align_corners);
    const int jb = last_tap<T>(cx, w, W, align_corners);
    T acc = T(0);
    if (ia <= ib && ja <= jb) {
      const int nj = jb - ja + 1;
      const int n = (ib - ia + 1) * nj;  // <= H * W
      for (int e = lane; e < n; e += kWarp) {
        const int di = e / nj;
        const int i = ia + di, j = ja + (e - di * nj);
        const T wy = tap_weight(bilinear_tap<T>(i, h, H, align_corners), cy);
        const T wx = tap_weight(bilinear_tap<T>(j, w, W, align_corners), cx);
        const int q = i * W + j;
        const T gq = normalize ? minmax_grad(g[q], y[q], range, lo_share, hi_share) : g[q];
        acc += wy * (wx * gq);
      }
    }
    acc = warp_reduce(acc, SumOp());
    if (lane == 0) {
      if (relu && !(s_low[m * hw + c] > T(0))) acc = T(0);
      gs[c] = acc;
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kFlatThreads)
    grad_wt_kernel(const T* __restrict__ A, const T* __restrict__ grad_s, T* __restrict__ grad_wt,
                   int64_t G, int64_t K, int64_t hw, int64_t total) {
  const int lane = threadIdx.x % kWarp;
  const int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x / kWarp;
  for (int64_t t = first; t < total; t += stride) {  // t = m * K + k, warp-uniform
    const int64_t m = t / K, k = t - m * K;
    const T* a = A + ((m / G) * K + k) * hw;
    const T* gs = grad_s + m * hw;
    T acc = T(0);
    for (int64_t p = lane; p < hw; p += kWarp) acc += gs[p] * a[p];
    acc = warp_reduce(acc, SumOp());
    if (lane == 0) grad_wt[t] = acc;
  }
}

template <typename T>
__global__ void __launch_bounds__(kFlatThreads)
    grad_A_kernel(const T* __restrict__ wt, const T* __restrict__ grad_s, T* __restrict__ grad_A,
                  int64_t G, int64_t K, int64_t hw, int64_t total) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    const int64_t bk = t / hw, p = t - bk * hw;  // t = (b * K + k) * hw + p
    const int64_t b = bk / K, k = bk - b * K;
    const T* wb = wt + b * G * K + k;
    const T* gs = grad_s + b * G * hw + p;
    T acc = T(0);
    for (int64_t gi = 0; gi < G; ++gi) acc += wb[gi * K] * gs[gi * hw];
    grad_A[t] = acc;
  }
}

}  // namespace

template <typename T>
void cam_combine_forward(const T* A, const T* wt, T* out, T* s_low, T* stats, int64_t B,
                         int64_t G, int64_t K, int64_t h, int64_t w, int64_t H, int64_t W,
                         bool relu, bool normalize, bool align_corners, std::uintptr_t stream) {
  check_sizes(B, G, K, h, w, H, W);
  const int64_t maps = B * G, hw = h * w, HW = H * W;
  if (maps == 0) return;
  const cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);

  const int64_t tiles = (hw + kSumTileP - 1) / kSumTileP;
  const int64_t n_blocks = maps * tiles;
  weighted_sum_kernel<T><<<grid_blocks(n_blocks, 1), dim3(kSumTileP, kSumSplitK), 0, st>>>(
      A, wt, s_low, G, K, hw, tiles, n_blocks);
  check_launch("cam_combine_forward/weighted_sum");

  const size_t low_bytes = size_t(hw) * sizeof(T);
  const bool low_in_smem = dynamic_smem_fits(upsample_minmax_kernel<T>, low_bytes);
  upsample_minmax_kernel<T><<<unsigned(maps), map_threads(HW), low_in_smem ? low_bytes : 0, st>>>(
      s_low, out, stats, int(h), int(w), int(H), int(W), relu, normalize, align_corners,
      low_in_smem);
  check_launch("cam_combine_forward/upsample_minmax");
}

template <typename T>
void cam_combine_backward(const T* grad_out, const T* out, const T* A, const T* wt,
                          const T* s_low, const T* stats, T* grad_s, T* grad_A, T* grad_wt,
                          int64_t B, int64_t G, int64_t K, int64_t h, int64_t w, int64_t H,
                          int64_t W, bool relu, bool normalize, bool align_corners,
                          std::uintptr_t stream) {
  check_sizes(B, G, K, h, w, H, W);
  const int64_t maps = B * G, hw = h * w, HW = H * W;
  const cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  if (maps == 0) {  // no maps: dA = 0 (dw is empty)
    if (grad_A && B * K * hw > 0) {
      check(cudaMemsetAsync(grad_A, 0, size_t(B * K * hw) * sizeof(T), st),
            "cam_combine_backward/zero grad_A");
    }
    return;
  }

  const int64_t lanes = hw * kWarp;
  upsample_backward_kernel<T>
      <<<unsigned(maps), map_threads(lanes > HW ? lanes : HW), 0, st>>>(
          grad_out, out, s_low, stats, grad_s, int(h), int(w), int(H), int(W), relu, normalize,
          align_corners);
  check_launch("cam_combine_backward/upsample_backward");

  if (grad_wt && K > 0) {
    const int64_t total = maps * K;
    grad_wt_kernel<T><<<grid_blocks(total, kFlatThreads / kWarp), kFlatThreads, 0, st>>>(
        A, grad_s, grad_wt, G, K, hw, total);
    check_launch("cam_combine_backward/grad_wt");
  }
  if (grad_A && K > 0) {
    const int64_t total = B * K * hw;
    grad_A_kernel<T><<<grid_blocks(total, kFlatThreads), kFlatThreads, 0, st>>>(
        wt, grad_s, grad_A, G, K, hw, total);
    check_launch("cam_combine_backward/grad_A");
  }
}

#define FASTCAM_CUDA_INSTANTIATE(T)                                                             \
  template void cam_combine_forward<T>(const T*, const T*, T*, T*, T*, int64_t, int64_t,       \
                                       int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, \
                                       bool, std::uintptr_t);                                   \
  template void cam_combine_backward<T>(const T*, const T*, const T*, const T*, const T*,      \
                                        const T*, T*, T*, T*, int64_t, int64_t, int64_t,       \
                                        int64_t, int64_t, int64_t, int64_t, bool, bool, bool,  \
                                        std::uintptr_t);
FASTCAM_CUDA_INSTANTIATE(float)
FASTCAM_CUDA_INSTANTIATE(double)

}  // namespace fastcam::cuda
