// A weight matrix read in place (Mat), and the layouts it can read
// (unit_strided; also the streamer's check in stream.cpp).
#pragma once

#include <ATen/core/Tensor.h>
#include <algorithm>
#include <cstdint>

namespace lstmcompat {
namespace {

using at::Tensor;

// A weight matrix read in place, whatever its layout: element (r, c) at
// p[r * rs + c * cs], with rs == 1 or cs == 1 (row-major, or a transposed view
// of row-major storage, such as the Keras front-end's gate-major kernels). No
// copy of a weight is ever kept between calls: every call reads the storage of
// the tensors it is given.
template <typename T>
struct Mat {
  const T* p;
  int64_t rs, cs;
  const T* at(int64_t r, int64_t c) const { return p + r * rs + c * cs; }
  // As gemm's right operand op(B) of a block starting at (r, c): (transposed, ldb).
  bool trans() const { return cs != 1; }
  int64_t ld() const { return cs != 1 ? cs : rs; }
  Mat t() const { return {p, cs, rs}; }
};

// True when t is a 2-D matrix that Mat can read (one unit stride, the other a
// valid leading dimension).
inline bool unit_strided(const Tensor& t) {
  if (t.dim() != 2) return false;
  const int64_t r = t.size(0), c = t.size(1), rs = t.stride(0), cs = t.stride(1);
  if (r <= 1 || c <= 1) return true;
  return (cs == 1 && rs >= c) || (rs == 1 && cs >= r);
}

template <typename T>
Mat<T> mat_of(const Tensor& t) {
  const int64_t r = t.size(0), c = t.size(1);
  int64_t rs = t.stride(0), cs = t.stride(1);
  // Size-1 dimensions have arbitrary strides: give BLAS a valid layout.
  if (c <= 1) {
    cs = 1;
    rs = std::max<int64_t>(rs, 1);
    if (r <= 1) rs = 1;
  } else if (r <= 1) {
    if (cs == 1) rs = c; else rs = 1;
  }
  if (cs == 1) rs = std::max<int64_t>(rs, c);
  return {t.data_ptr<T>(), rs, cs};
}

}  // namespace
}  // namespace lstmcompat
