// CUDA kernel of adaptive_kde: N small 1-D locally adaptive KDEs (ssvkernel),
// one thread per channel running the same per-channel driver as the OpenMP
// kernel (csrc/common/adaptive_kde_math.h: adaptive_kde_grid_size,
// adaptive_kde_fill_tables, adaptive_kde_channel), so the CPU tests exercise the
// math this kernel runs. The definition is
// fastcam/kernels/reference/adaptive_kde.py; this mirrors csrc/cpu/adaptive_kde.cpp:
//   1. adaptive_kde_grid_kernel: grid[c] = adaptive_kde_grid_size(x_c) (0: no estimate), one
//      thread per channel (grid-stride past the grid cap).
//   2. host: grid is read back (one stream synchronisation); the tables that
//      depend only on the grid size L (bandwidths, periodised smoothing kernels,
//      Gauss windows) are built once per distinct L with adaptive_kde_fill_tables on the
//      host (exactly as the OpenMP kernel builds them) and copied to one device
//      buffer, headed by their AdaptiveKdeTables descriptors (device pointers). grid[c]
//      is overwritten with the channel's table slot (-1: no estimate).
//   3. adaptive_kde_channel_kernel: one thread per channel: adaptive_kde_channel with that
//      channel's row of the caller's global-memory scratch, or zeros and 0
//      peaks where there is no estimate.
// The table buffer is stream-ordered (cudaMallocAsync / cudaFreeAsync) where the
// device supports memory pools; otherwise cudaMalloc and a synchronised free.
// Device code uses the device's exp (adaptive_kde_exp) and contracts multiply-adds
// (nvcc's default), so results agree with the OpenMP kernel to rounding, not
// bit for bit.
#include "adaptive_kde.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/adaptive_kde_math.h"
#include "kernel_utils.cuh"

namespace fastcam::cuda {
namespace {

using namespace detail;

// One channel per thread, and each thread's work is long and serial: small
// blocks spread few channels over many SMs.
constexpr int kAdaptiveKdeThreads = 32;

__global__ void __launch_bounds__(kAdaptiveKdeThreads)
    adaptive_kde_grid_kernel(const double* __restrict__ x, int32_t* __restrict__ grid, int64_t N,
                             int S, int Z) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < N; c += step)
    grid[c] = adaptive_kde_grid_size(x + c * S, S, Z, kAdaptiveKdeMaxGrid);
}

__global__ void __launch_bounds__(kAdaptiveKdeThreads)
    adaptive_kde_channel_kernel(const double* __restrict__ x, const int32_t* __restrict__ slot,
                                const AdaptiveKdeTables* __restrict__ tables,
                                double* __restrict__ scratch, int64_t scratch_stride,
                                double* __restrict__ density, int64_t* __restrict__ peaks,
                                int64_t N, int S, int Z, int M, int max_iter, double tol) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < N; c += step) {
    double* out = density + c * Z;
    const int s = slot[c];
    if (s < 0) {
      for (int i = 0; i < Z; ++i) out[i] = 0.0;
      peaks[c] = 0;
      continue;
    }
    const AdaptiveKdeTables tb = tables[s];
    peaks[c] = adaptive_kde_channel(x + c * S, S, Z, tb, M, max_iter, tol,
                                    scratch + c * scratch_stride, out);
  }
}

// The device buffer of the tables: freed in stream order (or after a
// synchronisation) when it goes out of scope, also on an error path.
class TableBuffer {
 public:
  TableBuffer(size_t bytes, cudaStream_t st) : st_(st) {
    int dev = 0, pools = 0;
    check(cudaGetDevice(&dev), "adaptive_kde: cudaGetDevice");
    check(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, dev),
          "adaptive_kde: cudaDeviceGetAttribute");
    async_ = pools != 0;
    check(async_ ? cudaMallocAsync(&ptr_, bytes, st_) : cudaMalloc(&ptr_, bytes),
          "adaptive_kde: allocation of the tables");
  }
  ~TableBuffer() {
    if (!ptr_) return;
    if (async_) {
      (void)cudaFreeAsync(ptr_, st_);
    } else {
      (void)cudaStreamSynchronize(st_);
      (void)cudaFree(ptr_);
    }
    (void)cudaGetLastError();  // nothing to report from a destructor
  }
  TableBuffer(const TableBuffer&) = delete;
  TableBuffer& operator=(const TableBuffer&) = delete;
  unsigned char* get() const { return static_cast<unsigned char*>(ptr_); }

 private:
  cudaStream_t st_;
  void* ptr_ = nullptr;
  bool async_ = false;
};

}  // namespace

void adaptive_kde(const double* x, double* density, int64_t* peaks, int32_t* grid,
                  double* scratch, int64_t scratch_stride, int64_t N, int64_t S, int64_t Z, int M,
                  int max_iter, double tol, std::uintptr_t stream) {
  if (M < 2) throw std::invalid_argument("fastcam CUDA adaptive_kde: M must be at least 2");
  if (N < 0 || S < 0) throw std::invalid_argument("fastcam CUDA adaptive_kde: negative size");
  if (S > INT_MAX || Z > INT_MAX)
    throw std::invalid_argument("fastcam CUDA adaptive_kde: more than 2^31 - 1 samples or "
                                "grid points per channel");
  if (N == 0) return;
  const cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);

  // 1. Internal grid sizes, read back.
  adaptive_kde_grid_kernel<<<grid_blocks(N, kAdaptiveKdeThreads), kAdaptiveKdeThreads, 0, st>>>(
      x, grid, N, int(S), int(Z));
  check_launch("adaptive_kde/grid");
  std::vector<int32_t> slot(N);
  check(cudaMemcpyAsync(slot.data(), grid, size_t(N) * sizeof(int32_t), cudaMemcpyDeviceToHost,
                        st),
        "adaptive_kde: copy of the grid sizes");
  check(cudaStreamSynchronize(st), "adaptive_kde: stream synchronisation");

  // 2. Tables per distinct grid size, one device buffer:
  //    [AdaptiveKdeTables x n_slots][per slot: W (M), ext (M(2L-1)), gext (M(2L-1))].
  std::vector<int> sizes;
  for (int32_t L : slot)
    if (L > 0) sizes.push_back(L);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  for (int L : sizes)
    if (adaptive_kde_scratch_size(L, M) > scratch_stride)
      throw std::invalid_argument(
          "fastcam CUDA adaptive_kde: scratch rows of " + std::to_string(scratch_stride) +
          " doubles, a channel's grid of " + std::to_string(L) + " points needs " +
          std::to_string(adaptive_kde_scratch_size(L, M)));
  const int max_L = sizes.empty() ? 0 : sizes.back();
  std::vector<int32_t> slot_of(max_L + 1, -1);
  for (size_t s = 0; s < sizes.size(); ++s) slot_of[sizes[s]] = int32_t(s);
  for (int32_t& v : slot) v = v > 0 ? slot_of[v] : -1;

  static_assert(sizeof(AdaptiveKdeTables) % sizeof(double) == 0,
                "AdaptiveKdeTables is a multiple of 8 bytes");
  const size_t head = sizes.size() * sizeof(AdaptiveKdeTables) / sizeof(double);  // in doubles
  size_t total = head;
  for (int L : sizes) total += size_t(M) * (1 + 2 * (2 * size_t(L) - 1));
  std::vector<double> host(total > 0 ? total : 1);
  const AdaptiveKdeTables* dev_tables = nullptr;
  TableBuffer buf(host.size() * sizeof(double), st);
  if (!sizes.empty()) {
    const double* dev = reinterpret_cast<const double*>(buf.get());
    std::vector<AdaptiveKdeTables> desc(sizes.size());
    size_t off = head;
    for (size_t s = 0; s < sizes.size(); ++s) {
      const int L = sizes[s];
      const size_t E = size_t(M) * (2 * size_t(L) - 1);
      double* W = host.data() + off;
      double* ext = W + M;
      double* gext = ext + E;
      AdaptiveKdeTables& tb = desc[s];
      tb.L = L;
      tb.dt = adaptive_kde_fill_tables(L, M, W, ext, gext);
      tb.W = dev + off;
      tb.ext = dev + off + M;
      tb.gext = dev + off + M + E;
      tb.Wmin = *std::min_element(W, W + M);
      tb.Wmax = *std::max_element(W, W + M);
      off += M + 2 * E;
    }
    std::memcpy(host.data(), desc.data(), desc.size() * sizeof(AdaptiveKdeTables));
    // From pageable memory: the call returns once the data is staged, so the
    // host vectors may go before the copy has run.
    check(cudaMemcpyAsync(buf.get(), host.data(), total * sizeof(double),
                          cudaMemcpyHostToDevice, st),
          "adaptive_kde: copy of the tables");
    dev_tables = reinterpret_cast<const AdaptiveKdeTables*>(buf.get());
  }
  check(cudaMemcpyAsync(grid, slot.data(), size_t(N) * sizeof(int32_t), cudaMemcpyHostToDevice,
                        st),
        "adaptive_kde: copy of the table slots");

  // 3. The estimates.
  adaptive_kde_channel_kernel<<<grid_blocks(N, kAdaptiveKdeThreads), kAdaptiveKdeThreads, 0, st>>>(
      x, grid, dev_tables, scratch, scratch_stride, density, peaks, N, int(S), int(Z), M,
      max_iter, tol);
  check_launch("adaptive_kde/channels");
}

}  // namespace fastcam::cuda
