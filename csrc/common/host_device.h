// FC_HD marks the per-element math shared by the OpenMP and CUDA kernels:
// __host__ __device__ under nvcc, plain inline functions elsewhere.
#pragma once

#if defined(__CUDACC__)
#define FC_HD __host__ __device__ __forceinline__
#else
#define FC_HD inline
#endif
