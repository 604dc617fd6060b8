// Compiled time loops of lstmcompat's `fused` LSTM kernel.
//
// Same contract as the pure-PyTorch loops in `_loops.py` (read that module's
// docstring first): `forward` runs the recurrence over precomputed input
// projections `Z` (overwritten with the gate pre-activations), `backward`
// runs it in reverse and returns the gradient w.r.t. the pre-activations,
// `step` is one inference step for streaming. Per step: one GEMM (MKL's packed
// sgemm for float when torch exports it, else BLAS `?gemm_` when torch exports
// it, else at::mm) and one fused pointwise pass over the batch, written as
// plain loops that gcc vectorises.
//
// Semantics are those of lstmcompat._engine.reference (see spec.py):
//   z_k = x W_k + h R_k + b_k; i = ract(z_i + w_i c); f = ract(z_f + w_f c)
//   c' = clip(f c + i act(z_g)); o = ract(z_o + w_o c'); h' = clip((o act(c')) P)
// with "carry" (Keras) or "zero" (TF1) masking.
//
// The ops (input checks, dispatch by activation, registration) and, as one
// translation unit so that the compiler inlines across all of it (the
// activations must inline into the pointwise loops), the pieces by job:
//   gemm.h         BLAS / MKL declarations, gemm, packed GEMM (RightOperand)
//   matrix.h       Mat: a weight read in place; unit_strided (also stream.cpp's)
//   activations.h  act_f / act_g over the activation table's codes, fast exp/tanh
//   activation_codes.h  those codes and constants, generated from _acts.py
//   config.h       Config, opt_ptr
//   threads.h      unit slices, thread counts, barrier, parallel region
//   forward.h      the forward time loop
//   backward.h     the backward time loop
//   step.h         one inference step (the `step` op, the streamer's step)
//   ops.h          what this file exports to stream.cpp (fused_step)
//   stream.cpp     the pybind11 Streamer (a second translation unit)
#include <ATen/ATen.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <vector>

#include "activations.h"
#include "backward.h"
#include "config.h"
#include "forward.h"
#include "gemm.h"
#include "matrix.h"
#include "ops.h"
#include "step.h"
#include "threads.h"

namespace lstmcompat {
namespace {

using at::Tensor;

// ------------------------------------------------------------- dispatching
template <template <typename, int, int> class Impl, typename T, typename... Args>
auto by_acts(int act, int ract, Args&&... args) {
  // Compile-time codes for the common pairs (tanh with sigmoid or hard_sigmoid
  // gates), a runtime switch for the rest.
  constexpr int kT = act::kTanh, kS = act::kSigmoid, kH = act::kHardSigmoid;
  if (act == kT && ract == kS) return Impl<T, kT, kS>::run(std::forward<Args>(args)...);
  if (act == kT && ract == kH) return Impl<T, kT, kH>::run(std::forward<Args>(args)...);
  if (act == kT) return Impl<T, kT, -1>::run(std::forward<Args>(args)...);
  if (ract == kS) return Impl<T, -1, kS>::run(std::forward<Args>(args)...);
  if (ract == kH) return Impl<T, -1, kH>::run(std::forward<Args>(args)...);
  return Impl<T, -1, -1>::run(std::forward<Args>(args)...);
}

template <typename T, int A, int RA> struct Fwd {
  template <typename... Args> static std::vector<Tensor> run(Args&&... args) {
    return forward_impl<T, A, RA>(std::forward<Args>(args)...);
  }
};
template <typename T, int A, int RA> struct Bwd {
  template <typename... Args> static std::vector<Tensor> run(Args&&... args) {
    return backward_impl<T, A, RA>(std::forward<Args>(args)...);
  }
};

Config make_config(const Tensor& Z, const Tensor& R, int64_t act, int64_t ract,
                   c10::optional<double> clip, c10::optional<double> pclip, bool carry) {
  Config cf;
  cf.T = Z.size(0);
  cf.B = Z.size(1);
  cf.U = Z.size(2) / 4;
  cf.Pn = R.size(0);
  cf.D = 0;
  cf.act = static_cast<int>(act);
  cf.ract = static_cast<int>(ract);
  cf.has_clip = clip.has_value();
  cf.clip = clip.value_or(0.0);
  cf.has_pclip = pclip.has_value();
  cf.pclip = pclip.value_or(0.0);
  cf.carry = carry;
  return cf;
}

void check_inputs(std::initializer_list<const Tensor*> ts, at::ScalarType st) {
  for (const Tensor* t : ts) {
    TORCH_CHECK(t->device().is_cpu(), "lstmcompat fused: CPU tensors expected");
    TORCH_CHECK(t->is_contiguous(), "lstmcompat fused: contiguous tensors expected");
    TORCH_CHECK(t->scalar_type() == st, "lstmcompat fused: all tensors must have one dtype");
  }
}

// A weight read in place (Mat): CPU, the dtype, 2-D with one unit stride.
void check_weight(const Tensor& t, at::ScalarType st, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "lstmcompat fused: CPU tensors expected");
  TORCH_CHECK(t.scalar_type() == st, "lstmcompat fused: all tensors must have one dtype");
  TORCH_CHECK(unit_strided(t), "lstmcompat fused: ", name,
              " must be a 2-D matrix with one unit stride (contiguous or transposed)");
}

void check_opt(const c10::optional<Tensor>& t, at::ScalarType st) {
  if (t.has_value() && t->defined()) check_inputs({&*t}, st);
}

// Shapes both loops rely on: Z (T, B, 4u), R (out, 4u), h (B, out), c (B, u),
// peep (3, u), P (u, out); a mismatch would read past a buffer.
void check_shapes(const Tensor& Z, const Tensor& R, const Tensor& h, const Tensor& c,
                  const c10::optional<Tensor>& peep, const c10::optional<Tensor>& P) {
  TORCH_CHECK(Z.dim() == 3 && Z.size(2) % 4 == 0, "lstmcompat fused: Z (T, B, 4u) expected");
  const int64_t B = Z.size(1), U = Z.size(2) / 4;
  TORCH_CHECK(R.size(1) == 4 * U, "lstmcompat fused: R (out, 4u) expected");
  const int64_t Pn = R.size(0);
  TORCH_CHECK(h.dim() == 2 && h.size(0) == B && h.size(1) == Pn &&
                  c.dim() == 2 && c.size(0) == B && c.size(1) == U,
              "lstmcompat fused: h (B, out) and c (B, u) expected");
  if (peep.has_value() && peep->defined()) {
    TORCH_CHECK(peep->numel() == 3 * U, "lstmcompat fused: peep (3, u) expected");
  }
  if (P.has_value() && P->defined()) {
    TORCH_CHECK(P->dim() == 2 && P->size(0) == U && P->size(1) == Pn,
                "lstmcompat fused: P (u, out) expected");
  } else {
    TORCH_CHECK(Pn == U, "lstmcompat fused: R (u, 4u) expected without a projection");
  }
}

// Low-precision products (Config::lowp): 0, or 1 (bfloat16) / 2 (float16) for float.
int check_lowp(int64_t lowp, at::ScalarType st) {
  TORCH_CHECK(lowp >= 0 && lowp <= 2, "lstmcompat fused: lowp must be 0, 1 or 2");
  TORCH_CHECK(lowp == 0 || st == at::kFloat,
              "lstmcompat fused: low-precision products need float32 tensors");
  return static_cast<int>(lowp);
}

// The optional inputs both loops share: dropout masks, peepholes, projection, step mask.
void check_options(const c10::optional<Tensor>& dmh, const c10::optional<Tensor>& peep,
                   const c10::optional<Tensor>& P, const c10::optional<Tensor>& mask,
                   at::ScalarType st) {
  check_opt(dmh, st);
  check_opt(peep, st);
  check_opt(P, st);
  if (mask.has_value() && mask->defined())
    TORCH_CHECK(mask->is_contiguous() && mask->scalar_type() == at::kBool, "mask: contiguous bool");
}

std::vector<Tensor> fused_forward(Tensor Z, const Tensor& R, const Tensor& h0, const Tensor& c0,
                                  const c10::optional<Tensor>& dmh,
                                  const c10::optional<Tensor>& peep,
                                  const c10::optional<Tensor>& P,
                                  const c10::optional<Tensor>& mask, int64_t act, int64_t ract,
                                  c10::optional<double> clip, c10::optional<double> pclip,
                                  bool carry, bool save, const c10::optional<Tensor>& bias,
                                  int64_t lowp, const c10::optional<Tensor>& x,
                                  const c10::optional<Tensor>& W) {
  const auto st = Z.scalar_type();
  check_inputs({&Z, &h0, &c0}, st);
  // x and W: the input product is computed in the loop (Z is then only written)
  const bool input = x.has_value() && x->defined();
  TORCH_CHECK(input == (W.has_value() && W->defined()), "forward: x and W go together");
  if (input) {
    TORCH_CHECK(lowp == 1 && bf16_gemm<float>(1) && st == at::kFloat && !dmh.has_value(),
                "forward: x and W (the input product in the loop) need bfloat16 products "
                "and no recurrent dropout");
    check_inputs({&*x}, st);
    check_weight(*W, st, "W");
    TORCH_CHECK(x->dim() == 3 && x->size(0) == Z.size(0) && x->size(1) == Z.size(1) &&
                    W->size(0) == x->size(2) && W->size(1) == Z.size(2),
                "forward: x (T, B, D) and W (D, 4u) expected");
  }
  check_weight(R, st, "R");
  check_opt(bias, st);
  if (bias.has_value() && bias->defined())
    TORCH_CHECK(bias->numel() == Z.size(2), "bias: (4 * units,) expected");
  check_options(dmh, peep, P, mask, st);
  check_shapes(Z, R, h0, c0, peep, P);
  Config cf = make_config(Z, R, act, ract, clip, pclip, carry);
  cf.lowp = check_lowp(lowp, st);
  if (st == at::kFloat)
    return by_acts<Fwd, float>(cf.act, cf.ract, cf, Z, R, h0, c0, dmh, peep, P, mask, save,
                               bias, x, W);
  TORCH_CHECK(st == at::kDouble, "lstmcompat fused: float32 or float64 expected");
  return by_acts<Fwd, double>(cf.act, cf.ract, cf, Z, R, h0, c0, dmh, peep, P, mask, save,
                              bias, x, W);
}

std::vector<Tensor> fused_backward(const Tensor& Z, const Tensor& C, const Tensor& Cpre,
                                   const Tensor& Rpre, const Tensor& c0, const Tensor& R,
                                   const c10::optional<Tensor>& dmh,
                                   const c10::optional<Tensor>& peep,
                                   const c10::optional<Tensor>& P,
                                   const c10::optional<Tensor>& mask, const Tensor& dout,
                                   const Tensor& dhT, const Tensor& dcT, int64_t act,
                                   int64_t ract, c10::optional<double> clip,
                                   c10::optional<double> pclip, bool carry, int64_t lowp,
                                   bool lean) {
  const auto st = Z.scalar_type();
  check_inputs({&Z, &C, &Cpre, &Rpre, &c0, &dout, &dhT, &dcT}, st);
  check_weight(R, st, "R");
  check_options(dmh, peep, P, mask, st);
  check_shapes(Z, R, dhT, c0, peep, P);
  Config cf = make_config(Z, R, act, ract, clip, pclip, carry);
  cf.lowp = check_lowp(lowp, st);
  cf.lean = lean;
  if (st == at::kFloat)
    return by_acts<Bwd, float>(cf.act, cf.ract, cf, Z, C, Cpre, Rpre, c0, R, dmh, peep, P, mask,
                               dout, dhT, dcT);
  TORCH_CHECK(st == at::kDouble, "lstmcompat fused: float32 or float64 expected");
  return by_acts<Bwd, double>(cf.act, cf.ract, cf, Z, C, Cpre, Rpre, c0, R, dmh, peep, P, mask,
                              dout, dhT, dcT);
}

// What this build compiled in (reported by extension_status).
std::vector<std::string> features() {
  std::vector<std::string> f;
#ifdef LSTMCOMPAT_BLAS
  f.emplace_back("blas");
#endif
#ifdef LSTMCOMPAT_PACKED_GEMM
  f.emplace_back("mkl-packed-gemm");
#endif
#if defined(LSTMCOMPAT_BF16_GEMM) || defined(LSTMCOMPAT_DPBF16)
  f.emplace_back("bf16-gemm");
#endif
#ifdef LSTMCOMPAT_DPBF16
  f.emplace_back("avx512-bf16-gemm");
#endif
#ifdef _OPENMP
  f.emplace_back("openmp");
#endif
#ifdef __AVX512F__
  f.emplace_back("avx512");
#elif defined(__AVX2__)
  f.emplace_back("avx2");
#endif
  return f;
}

// The activation with code `code` and its derivative, element by element, through
// the loops' own switches (act_f, act_g with a runtime code): {y, d} with
// y = act(x) and d the gradient w.r.t. x given g w.r.t. y. For the test that
// ties the switches to the activation table (_acts.py); an unknown code gives NaN.
template <typename T>
std::vector<Tensor> activation_impl(const Tensor& x, const Tensor& g, int a) {
  Tensor y = at::empty_like(x), d = at::empty_like(x);
  const T* xp = x.data_ptr<T>();
  const T* gp = g.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  T* dp = d.data_ptr<T>();
  for (int64_t e = 0; e < x.numel(); ++e) {
    yp[e] = act_f<T>(a, xp[e]);
    dp[e] = act_g<T>(a, gp[e], xp[e], yp[e]);
  }
  return {y, d};
}

std::vector<Tensor> activation_op(const Tensor& x, const Tensor& g, int64_t code) {
  const auto st = x.scalar_type();
  check_inputs({&x, &g}, st);
  TORCH_CHECK(x.sizes() == g.sizes(), "activation: x and g of one shape expected");
  const int a = static_cast<int>(code);
  if (st == at::kFloat) return activation_impl<float>(x, g, a);
  TORCH_CHECK(st == at::kDouble, "lstmcompat fused: float32 or float64 expected");
  return activation_impl<double>(x, g, a);
}

// a @ b for float or bfloat16 matrices a (M, K) and b (K, N) of any layout with one
// unit stride, the operands rounded to bfloat16: float (M, N), by dp_gemm (AVX-512
// BF16 without AMX) or MKL's gemm_bf16bf16f32 (AMX). The low-precision products of
// lstmcompat._engine.precision.products.
Tensor mm_bf16(const Tensor& a, const Tensor& b) {
  TORCH_CHECK(a.device().is_cpu() && b.device().is_cpu(), "mm_bf16: CPU tensors expected");
  for (const Tensor* t : {&a, &b})
    TORCH_CHECK(t->scalar_type() == at::kFloat || t->scalar_type() == at::kBFloat16,
                "mm_bf16: float32 or bfloat16 tensors expected");
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
              "mm_bf16: (M, K) @ (K, N) expected");
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  Tensor c = at::empty({M, N}, a.options().dtype(at::kFloat));
  if (M == 0 || N == 0) return c;
  if (K == 0) return c.zero_();
#ifdef LSTMCOMPAT_DPBF16
  {
    // b packed; a as bfloat16 rows, or packed too when it is a transposed view
    // (the weight gradients' x^T and h^T: read without a transposed copy)
    auto pack = [](const Tensor& t, bool transpose, int64_t pw) {
      const int64_t r = transpose ? t.size(1) : t.size(0), cl = transpose ? t.size(0) : t.size(1);
      const int64_t rs = transpose ? t.stride(1) : t.stride(0);
      const int64_t cs = transpose ? t.stride(0) : t.stride(1);
      if (t.scalar_type() == at::kBFloat16)
        return pack_b16_strided(r, cl, reinterpret_cast<const uint16_t*>(t.data_ptr()), rs, cs, pw);
      return pack_b16_strided(r, cl, t.data_ptr<float>(), rs, cs, pw);
    };
    const PackedB16 pb = pack(b, false, kDpCols);
    if (M > 1 && a.stride(0) == 1 && a.stride(1) != 1) {
      const PackedB16 pa = pack(a, true, kDpRowBlock);
      dp_gemm_parallel(M, LeftOperand16::packed(pa), pb, c.data_ptr<float>(), N);
    } else {
      const Tensor ab = a.to(at::kBFloat16).contiguous();
      dp_gemm_parallel(M, LeftOperand16::rows(reinterpret_cast<const uint16_t*>(ab.data_ptr()), K),
                       pb, c.data_ptr<float>(), N);
    }
    return c;
  }
#elif defined(LSTMCOMPAT_BF16_GEMM)
  auto bf16 = [](const Tensor& t) {
    Tensor r = t.scalar_type() == at::kBFloat16 ? t : t.to(at::kBFloat16);
    return unit_strided(r) ? r : r.contiguous();
  };
  // MKL's bfloat16 GEMM is several times slower with a transposed right operand: a
  // row-major copy of it (the smaller operand here: a weight)
  const Tensor ab = bf16(a);
  Tensor bb = bf16(b);
  if (bb.size(0) > 1 && bb.size(1) > 1 && bb.stride(1) != 1) bb = bb.contiguous();
  const Mat<at::BFloat16> am = mat_of<at::BFloat16>(ab), bm = mat_of<at::BFloat16>(bb);
  constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
  cblas_gemm_bf16bf16f32(kRowMajor, am.trans() ? kTrans : kNoTrans,
                         bm.trans() ? kTrans : kNoTrans, static_cast<int>(M),
                         static_cast<int>(N), static_cast<int>(K), 1.0f,
                         reinterpret_cast<const uint16_t*>(am.p), static_cast<int>(am.ld()),
                         reinterpret_cast<const uint16_t*>(bm.p), static_cast<int>(bm.ld()),
                         0.0f, c.data_ptr<float>(), static_cast<int>(N));
  return c;
#else
  TORCH_CHECK(false, "mm_bf16: this build has no bfloat16 GEMM (see features())");
#endif
}

std::array<int64_t, 4> gate_map(const c10::optional<at::IntArrayRef>& gates) {
  std::array<int64_t, 4> g{0, 1, 2, 3};
  if (gates.has_value()) {
    TORCH_CHECK(gates->size() == 4, "step: `gates` must name 4 gate blocks");
    bool seen[4] = {false, false, false, false};
    for (int k = 0; k < 4; ++k) {
      const int64_t v = (*gates)[k];
      TORCH_CHECK(v >= 0 && v < 4 && !seen[v], "step: `gates` must be a permutation of 0..3");
      seen[v] = true;
      g[k] = v;
    }
  }
  return g;
}

}  // namespace

std::vector<Tensor> fused_step(const Tensor& x, const Tensor& W, const Tensor& R,
                               const c10::optional<Tensor>& b, double forget_bias,
                               const Tensor& h, const Tensor& c,
                               const c10::optional<Tensor>& peep, const c10::optional<Tensor>& P,
                               int64_t act, int64_t ract, c10::optional<double> clip,
                               c10::optional<double> pclip,
                               const std::array<int64_t, 4>& gates, bool save) {
  const auto st = x.scalar_type();
  check_inputs({&x, &h, &c}, st);
  check_weight(W, st, "W");
  if (R.defined()) check_weight(R, st, "R");
  check_opt(peep, st);
  check_opt(P, st);
  TORCH_CHECK(x.dim() == 2 && h.dim() == 2 && c.dim() == 2, "step: 2-D x, h, c expected");
  const int64_t B = x.size(0), U = W.size(1) / 4, Pn = R.defined() ? R.size(0) : h.size(1);
  if (R.defined()) {
    TORCH_CHECK(W.size(1) % 4 == 0 && R.size(1) == W.size(1) && W.size(0) == x.size(1),
                "step: W (depth, 4u) and R (out, 4u) expected");
  } else {
    TORCH_CHECK(W.size(1) % 4 == 0 && W.size(0) == x.size(1) + Pn,
                "step: W (depth + out, 4u) expected without R");
  }
  TORCH_CHECK(h.size(0) == B && h.size(1) == Pn && c.size(0) == B && c.size(1) == U,
              "step: h (batch, out) and c (batch, units) expected");
  if (b.has_value() && b->defined()) {
    TORCH_CHECK(b->device().is_cpu() && b->scalar_type() == st && b->dim() == 1 &&
                    b->numel() == 4 * U,
                "step: b (4u,) of the inputs' dtype expected");
  }
  if (peep.has_value() && peep->defined()) {
    TORCH_CHECK(peep->numel() == 3 * U, "step: peep (3, u) expected");
  }
  if (P.has_value() && P->defined()) {
    TORCH_CHECK(P->dim() == 2 && P->size(0) == U && P->size(1) == Pn, "step: P (u, out) expected");
  } else {
    TORCH_CHECK(Pn == U, "step: R (units, 4u) expected without a projection");
  }
  const int a = static_cast<int>(act), ra = static_cast<int>(ract);
  if (st == at::kFloat)
    return by_acts<Step, float>(a, ra, x, W, R, b, forget_bias, h, c, peep, P, a, ra, clip,
                                pclip, gates, save);
  TORCH_CHECK(st == at::kDouble, "lstmcompat fused: float32 or float64 expected");
  return by_acts<Step, double>(a, ra, x, W, R, b, forget_bias, h, c, peep, P, a, ra, clip,
                               pclip, gates, save);
}

namespace {

std::vector<Tensor> step_op(const Tensor& x, const Tensor& W, const Tensor& R,
                            const c10::optional<Tensor>& b, double forget_bias, const Tensor& h,
                            const Tensor& c, const c10::optional<Tensor>& peep,
                            const c10::optional<Tensor>& P, int64_t act, int64_t ract,
                            c10::optional<double> clip, c10::optional<double> pclip,
                            c10::optional<at::IntArrayRef> gates, bool save) {
  return lstmcompat::fused_step(x, W, R, b, forget_bias, h, c, peep, P, act, ract, clip, pclip,
                                gate_map(gates), save);
}

}  // namespace
}  // namespace lstmcompat

TORCH_LIBRARY(lstmcompat_fused, m) {
  m.def("forward(Tensor(a!) Z, Tensor R, Tensor h0, Tensor c0, Tensor? dmh, Tensor? peep, "
        "Tensor? P, Tensor? mask, int act, int ract, float? cell_clip, float? proj_clip, "
        "bool carry, bool save, Tensor? bias=None, int lowp=0, Tensor? x=None, Tensor? W=None) "
        "-> Tensor[]");
  m.def("backward(Tensor Z, Tensor C, Tensor Cpre, Tensor Rpre, Tensor c0, Tensor R, "
        "Tensor? dmh, Tensor? peep, Tensor? P, Tensor? mask, Tensor dout, Tensor dhT, "
        "Tensor dcT, int act, int ract, float? cell_clip, float? proj_clip, bool carry, "
        "int lowp=0, bool lean=False) -> Tensor[]");
  m.def("step(Tensor x, Tensor W, Tensor R, Tensor? b, float forget_bias, Tensor h, Tensor c, "
        "Tensor? peep, Tensor? P, int act, int ract, float? cell_clip, float? proj_clip, "
        "int[]? gates=None, bool save=False) -> Tensor[]");
  m.def("features() -> str[]", &lstmcompat::features);
  m.def("activation(Tensor x, Tensor g, int code) -> Tensor[]");
  m.def("mm_bf16(Tensor a, Tensor b) -> Tensor");
}

TORCH_LIBRARY_IMPL(lstmcompat_fused, CPU, m) {
  m.impl("forward", &lstmcompat::fused_forward);
  m.impl("backward", &lstmcompat::fused_backward);
  m.impl("step", &lstmcompat::step_op);
  m.impl("activation", &lstmcompat::activation_op);
  m.impl("mm_bf16", &lstmcompat::mm_bf16);
}
