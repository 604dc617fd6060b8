// The configuration both time loops read, and optional tensors as pointers.
// Part of the unity build of ops.cpp (see there).
#pragma once

#include <ATen/ATen.h>
#include <cstdint>

namespace lstmcompat {
namespace {

using at::Tensor;

struct Config {
  int64_t T, B, U, Pn, D;  // steps, batch, units, output size, depth (step only)
  int act, ract;
  bool has_clip, has_pclip, carry;
  double clip, pclip;
  // Operands of the recurrent products (CellSpec.matmul_dtype): 0 the loop's type,
  // 1 rounded to bfloat16, 2 rounded to float16 (the caller passes R rounded).
  int lowp = 0;
  // Backward with bfloat16 products (see backward_impl): keep dz only as the
  // bfloat16 copy the weight gradients read, and sum db in the loop.
  bool lean = false;
};

template <typename T> const T* opt_ptr(const c10::optional<Tensor>& t) {
  return t.has_value() && t->defined() ? t->data_ptr<T>() : nullptr;
}

}  // namespace
}  // namespace lstmcompat
