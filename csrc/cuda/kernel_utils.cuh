// Launch helpers and block reductions shared by fastcam's CUDA kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../common/smem_budget.h"

namespace fastcam::cuda::detail {

constexpr int kWarp = 32;
constexpr int kMapThreads = 512;          // most threads of a one-block-per-map kernel
constexpr int kFlatThreads = 256;         // threads of a flat (grid-stride / tile) kernel
constexpr int64_t kMaxGrid = 1 << 20;     // blocks of a grid-stride launch, at most

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("fastcam CUDA ") + what + " failed: " +
                             cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

// After a kernel launch: a launch error (bad configuration, no kernel image for
// this GPU, ...) or an earlier asynchronous error of this runtime.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Whether `bytes` of dynamic shared memory fit beside `kernel`'s static shared
// memory (its reduction arrays; cuobjdump reports 1 KB more for the sm_90 code
// of the same kernel than for sm_80) without opt-in, by the function's
// attributes for the current device: launching more fails.
template <typename Kernel>
inline bool dynamic_smem_fits(Kernel kernel, size_t bytes) {
  cudaFuncAttributes a{};
  check(cudaFuncGetAttributes(&a, kernel), "cudaFuncGetAttributes");
  return smem_fits(bytes, a.sharedSizeBytes, size_t(a.maxDynamicSharedSizeBytes));
}

// Blocks of a grid-stride launch over `items` work items, `per_block` per
// block: at least 1, at most kMaxGrid.
inline unsigned grid_blocks(int64_t items, int64_t per_block) {
  int64_t blocks = (items + per_block - 1) / per_block;
  if (blocks > kMaxGrid) blocks = kMaxGrid;
  return unsigned(blocks < 1 ? 1 : blocks);
}

inline int round_up_warp(int64_t n) { return int((n + kWarp - 1) / kWarp * kWarp); }

// Threads of a one-block-per-map launch: enough for `work` parallel items, a
// multiple of the warp size, at most kMapThreads.
inline int map_threads(int64_t work) {
  if (work >= kMapThreads) return kMapThreads;
  return work < kWarp ? kWarp : round_up_warp(work);
}

template <typename T>
__device__ __forceinline__ T pos_inf();
template <>
__device__ __forceinline__ float pos_inf<float>() { return __int_as_float(0x7f800000); }
template <>
__device__ __forceinline__ double pos_inf<double>() {
  return __longlong_as_double(0x7ff0000000000000LL);
}

// std::min / std::max semantics, as in the OpenMP kernels.
struct MinOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return b < a ? b : a; }
};
struct MaxOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a < b ? b : a; }
};
struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int off = kWarp / 2; off > 0; off >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, off));
  return v;  // complete in lane 0
}

// Block-wide reduction, the result returned to every thread. blockDim.x must be
// a multiple of 32; every thread of the block must call it (it synchronises).
// `scratch` holds at least 32 values.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T identity, T* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int nwarps = blockDim.x / kWarp;
  v = warp_reduce(v, op);
  __syncthreads();  // an earlier call may still be reading scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T x = lane < nwarps ? scratch[lane] : identity;
    x = warp_reduce(x, op);
    if (lane == 0) scratch[0] = x;
  }
  __syncthreads();
  return scratch[0];
}

}  // namespace fastcam::cuda::detail
