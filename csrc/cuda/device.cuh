// CUDA device queries for fastcam._C. Plain C++ declarations (no CUDA headers),
// so the host-compiled bindings can include this file.
#pragma once

namespace fastcam::cuda {

// Number of CUDA devices the runtime can use; 0 when there is no GPU, no driver,
// or a driver too old for the runtime fastcam was built with. Never throws.
int device_count() noexcept;

// Throws std::runtime_error, with the CUDA runtime's reason, when no CUDA
// device can be used. Never aborts: the CUDA runtime is linked statically and
// loads the driver (libcuda) lazily, so a machine without one just reports it.
void require_device();

}  // namespace fastcam::cuda
