// The shared-memory budget of a CUDA block launched without opting in to more:
// host-only arithmetic, compiled into every build of fastcam._C (bound as
// smem_fits) so that the CPU tests check the rule the CUDA launchers apply.
#pragma once

#include <cstddef>

namespace fastcam {

// Static + dynamic shared memory of one block without
// cudaFuncAttributeMaxDynamicSharedMemorySize opt-in (every GPU since sm_20).
constexpr std::size_t kSmemPerBlock = 48 * 1024;

// Whether `dynamic` bytes of dynamic shared memory can be launched with a
// kernel holding `static_bytes` of static shared memory (its __shared__ arrays,
// e.g. a block reduction's 32 slots; cudaFuncAttributes::sharedSizeBytes) and
// allowing at most `max_dynamic` dynamic bytes
// (cudaFuncAttributes::maxDynamicSharedSizeBytes).
constexpr bool smem_fits(std::size_t dynamic, std::size_t static_bytes,
                         std::size_t max_dynamic) {
  return dynamic <= max_dynamic && static_bytes <= kSmemPerBlock &&
         dynamic <= kSmemPerBlock - static_bytes;
}

}  // namespace fastcam
