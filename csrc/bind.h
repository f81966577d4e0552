// The per-op binding functions (bind_<op>.cpp) that bindings.cpp calls: each
// defines its op's entry points in fastcam._C.cpu and, when the CUDA kernels
// are built (cuda != nullptr), in fastcam._C.cuda, under the op's names
// (<op>, or <op>_forward / <op>_backward), as the C++ functions they call.
#pragma once
#include <pybind11/pybind11.h>

void bind_cam_combine(pybind11::module_& cpu, pybind11::module_* cuda);
void bind_mask_blend(pybind11::module_& cpu, pybind11::module_* cuda);
void bind_rank_reveal(pybind11::module_& cpu, pybind11::module_* cuda);
void bind_adaptive_kde(pybind11::module_& cpu, pybind11::module_* cuda);
