// CUDA device queries: see device.cuh.
#include "device.cuh"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace fastcam::cuda {
namespace {

// cudaGetDeviceCount, clearing the (non-sticky) error it may leave behind so a
// later, unrelated runtime call does not report it.
cudaError_t query_count(int* n) noexcept {
  *n = 0;
  const cudaError_t e = cudaGetDeviceCount(n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    *n = 0;
  }
  return e;
}

}  // namespace

int device_count() noexcept {
  int n = 0;
  query_count(&n);
  return n;
}

void require_device() {
  int n = 0;
  const cudaError_t e = query_count(&n);
  if (e == cudaSuccess && n > 0) return;
  std::string msg = "fastcam CUDA kernels: no usable CUDA device";
  if (e != cudaSuccess) {
    msg += std::string(" (") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e) + ")";
    if (e == cudaErrorInsufficientDriver)
      msg += "; no NVIDIA driver was found, or it is older than the CUDA runtime " +
             std::to_string(CUDART_VERSION / 1000) + "." +
             std::to_string(CUDART_VERSION % 1000 / 10) + " fastcam._C was built with needs";
  } else {
    msg += " (the CUDA runtime reports 0 devices)";
  }
  msg += ". Use CPU tensors, or the 'reference' backend.";
  throw std::runtime_error(msg);
}

}  // namespace fastcam::cuda
