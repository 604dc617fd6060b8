// The activations and their derivatives (act_f, act_g: one switch over the codes
// of the activation table in _acts.py), fast float exp/tanh, TF's clip_by_value.
// Part of the unity build of ops.cpp (see there).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include "activation_codes.h"

namespace lstmcompat {
namespace {

using at::Tensor;

// Always inlined: an out-of-line call in a pointwise loop stops gcc from
// vectorising it (the streaming step's pass ran 10x slower when tanh_f was not
// inlined there).
#define LSTMCOMPAT_INLINE inline __attribute__((always_inline))
// Float versions avoid libm calls so that the loops vectorise: exp is the Cephes
// single-precision algorithm (about 1-2 ulp), tanh Eigen's rational function
// (about 5 ulp). Double uses libm.

LSTMCOMPAT_INLINE float exp_f(float x) {
  const float xc = x > 88.8f ? 88.8f : (x < -104.f ? -104.f : x);
  const float t = xc * 1.44269504088896341f;
  const float kf = (t + 12582912.f) - 12582912.f;  // round to nearest integer
  float r = xc - kf * 0.693359375f;
  r = r - kf * -2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  float y = p * (r * r) + r + 1.0f;
  const int32_t k = static_cast<int32_t>(kf);
  const int32_t k1 = k >> 1, k2 = k - k1;  // two factors keep 2^k representable
  float s1, s2;
  const int32_t b1 = (k1 + 127) << 23, b2 = (k2 + 127) << 23;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  y = y * s1 * s2;
  y = x > 88.72283935546875f ? std::numeric_limits<float>::infinity() : y;
  return x < -103.972077083991796f ? 0.0f : y;
}

// a * b + c: one fused rounding where the CPU has FMA (polynomials only; the LSTM
// equations themselves keep PyTorch's two roundings, see -ffp-contract=off).
LSTMCOMPAT_INLINE float madd(float a, float b, float c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// Eigen's rational tanh (generic_fast_tanh_float), which TensorFlow's CPU kernels
// use: within 3e-7 relative of tanh, one division and no exp, so about 2.5x faster
// in the pointwise pass than tanh through exp.
LSTMCOMPAT_INLINE float tanh_f(float x) {
  const float lim = 7.99881172180175781f;
  const float xc = x > lim ? lim : (x < -lim ? -lim : x);
  const float x2 = xc * xc;
  float p = madd(x2, -2.76076847742355e-16f, 2.00018790482477e-13f);
  p = madd(x2, p, -8.60467152213735e-11f);
  p = madd(x2, p, 5.12229709037114e-08f);
  p = madd(x2, p, 1.48572235717979e-05f);
  p = madd(x2, p, 6.37261928875436e-04f);
  p = madd(x2, p, 4.89352455891786e-03f);
  p = xc * p;
  float q = madd(x2, 1.19825839466702e-06f, 1.18534705686654e-04f);
  q = madd(x2, q, 2.26843463243900e-03f);
  q = madd(x2, q, 4.89352518554385e-03f);
  const float ax = x < 0 ? -x : x;
  return ax < 0.0004f ? x : p / q;
}

template <typename T> LSTMCOMPAT_INLINE T exp_t(T x) { return std::exp(x); }
template <> LSTMCOMPAT_INLINE float exp_t<float>(float x) { return exp_f(x); }
template <typename T> LSTMCOMPAT_INLINE T tanh_t(T x) { return std::tanh(x); }
template <> LSTMCOMPAT_INLINE float tanh_t<float>(float x) { return tanh_f(x); }
template <typename T> LSTMCOMPAT_INLINE T sigmoid_t(T x) { return T(1) / (T(1) + exp_t<T>(-x)); }
// exp(x) - 1 as the reference (and TF's Elu/Selu) compute it, not expm1: where it
// rounds to 0 (a tiny negative x) the output-based slope of elu/selu is `pos`.
template <typename T> inline T expm1_t(T x) { return exp_t<T>(x) - T(1); }

// The activation with code a (act::k*, generated from the activation table in
// _acts.py); keras3_hard_sigmoid is Keras 3's hard_sigmoid: relu6(x + 3) / 6, a
// true division as TF's. A code without a case gives NaN, which the test that
// ties this switch to the table (test_activation_table.py) reports.
template <typename T>
LSTMCOMPAT_INLINE T act_f(int a, T x) {
  switch (a) {
    case act::kLinear: return x;
    case act::kTanh: return tanh_t<T>(x);
    case act::kSigmoid: return sigmoid_t<T>(x);
    case act::kHardSigmoid: {
      const T t = x * T(0.2) + T(0.5);
      return t < T(0) ? T(0) : (t > T(1) ? T(1) : t);
    }
    case act::kRelu: return x < T(0) ? T(0) : x;
    case act::kSoftsign: return x / (T(1) + (x < 0 ? -x : x));
    case act::kExponential: return exp_t<T>(x);
    case act::kElu: return x > T(0) ? x : expm1_t<T>(x);
    case act::kSelu:
      return T(act::kSeluScale) * (x > T(0) ? x : T(act::kSeluAlpha) * expm1_t<T>(x));
    case act::kSwish: return x * sigmoid_t<T>(x);
    case act::kKeras3HardSigmoid: {
      const T s = x + T(3);
      return (s < T(0) ? T(0) : (s > T(6) ? T(6) : s)) / T(6);  // NaN stays NaN
    }
    default: return std::numeric_limits<T>::quiet_NaN();
  }
}

// The gradient w.r.t. x given the gradient g w.r.t. y = act(x), as autograd forms
// it for the reference's expression (see _acts.py): selections select (an exact 0
// even where g is NaN), elu/selu take their slope from the output, and
// keras3_hard_sigmoid multiplies by its mask as TF does.
template <typename T>
LSTMCOMPAT_INLINE T act_g(int a, T g, T x, T y) {
  switch (a) {
    case act::kLinear: return g;
    case act::kTanh: return g * (T(1) - y * y);
    case act::kSigmoid: return g * (T(1) - y) * y;
    case act::kHardSigmoid: {
      const T t = x * T(0.2) + T(0.5);
      return ((t >= T(0)) & (t <= T(1))) ? g * T(0.2) : T(0);
    }
    case act::kRelu: return y <= T(0) ? T(0) : g;
    case act::kSoftsign: {
      const T d = (x < 0 ? -x : x) + T(1);
      const T sg = x > T(0) ? T(1) : (x < T(0) ? T(-1) : x);
      return g / d + (-g * x / (d * d)) * sg;
    }
    case act::kExponential: return g * y;
    case act::kElu: return g * (y < T(0) ? y + T(1) : T(1));
    case act::kSelu:
      return g * (y < T(0) ? y + T(act::kSeluScale * act::kSeluAlpha) : T(act::kSeluScale));
    case act::kSwish: {
      const T s = sigmoid_t<T>(x);
      return g * s * (T(1) + x * (T(1) - s));
    }
    case act::kKeras3HardSigmoid: {  // TF's Relu6Grad: g times the 0/1 mask (NaN/inf g
      const T s = x + T(3);          // gives NaN), then / 6
      const T m = ((s > T(0)) & (s < T(6))) ? T(1) : T(0);
      return (g * m) / T(6);
    }
    default: return std::numeric_limits<T>::quiet_NaN();  // a code without a case
  }
}

// Compile-time activation when A >= 0 (the switch folds away), else runtime.
template <typename T, int A> LSTMCOMPAT_INLINE T F(int a, T x) { return act_f<T>(A >= 0 ? A : a, x); }
template <typename T, int A> LSTMCOMPAT_INLINE T Dg(int a, T g, T x, T y) {
  return act_g<T>(A >= 0 ? A : a, g, x, y);
}

// TF's clip_by_value: maximum(minimum(v, hi), lo), both NaN-propagating, so NaN
// stays NaN, a NaN bound gives NaN and lo wins when lo > hi (a negative clip).
template <typename T> LSTMCOMPAT_INLINE T minv(T a, T b) { return (a > b || b != b) ? b : a; }
template <typename T> LSTMCOMPAT_INLINE T maxv(T a, T b) { return (a < b || b != b) ? b : a; }
template <typename T> LSTMCOMPAT_INLINE T clampv(T v, T lo, T hi) { return maxv(minv(v, hi), lo); }

}  // namespace
}  // namespace lstmcompat
