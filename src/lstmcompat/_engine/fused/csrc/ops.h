// What ops.cpp exports to the other translation unit (stream.cpp).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <array>
#include <tuple>
#include <vector>

namespace lstmcompat {

// One step z = b + x W + h R (+ forget_bias on f), then the pointwise pass:
// returns {h', c'} (with save also the pre-activations z, the pre-clip cell and
// the pre-clip output for backward). W (depth, 4u) and R (out, 4u) are read in
// place, row-major or transposed (an undefined R: the rows of W after the
// depth); canonical gate k (i, f, g, o) is column block gates[k] of W, R and b. The `step` op; see ops.cpp and step.h.
std::vector<at::Tensor> fused_step(const at::Tensor& x, const at::Tensor& W, const at::Tensor& R,
                                   const c10::optional<at::Tensor>& b, double forget_bias,
                                   const at::Tensor& h, const at::Tensor& c,
                                   const c10::optional<at::Tensor>& peep,
                                   const c10::optional<at::Tensor>& P, int64_t act, int64_t ract,
                                   c10::optional<double> clip, c10::optional<double> pclip,
                                   const std::array<int64_t, 4>& gates, bool save = false);

}  // namespace lstmcompat
