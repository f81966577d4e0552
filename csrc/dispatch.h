// What every binding file shares: data pointers passed from Python as integers,
// and the one dtype dispatch ("float32" -> float, "float64" -> double).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace fastcam {

template <typename T>
const T* cp(std::uintptr_t p) { return reinterpret_cast<const T*>(p); }
template <typename T>
T* mp(std::uintptr_t p) { return reinterpret_cast<T*>(p); }

inline void check_dtype(const std::string& dtype) {
  if (dtype != "float32" && dtype != "float64")
    throw std::invalid_argument("fastcam._C: unsupported dtype " + dtype + " (float32 or float64)");
}

}  // namespace fastcam

// Runs the statements with T = float or double, as `dtype` names it.
#define FASTCAM_DISPATCH(dtype, ...)            \
  do {                                          \
    ::fastcam::check_dtype(dtype);              \
    if (dtype == "float32") {                   \
      using T = float;                          \
      __VA_ARGS__;                              \
    } else {                                    \
      using T = double;                         \
      __VA_ARGS__;                              \
    }                                           \
  } while (0)
