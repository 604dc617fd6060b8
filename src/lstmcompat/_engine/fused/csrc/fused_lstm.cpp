// Compiled time loops of lstmcompat's `fused` LSTM kernel.
//
// Same contract as the pure-PyTorch loops in `_loops.py` (read that module's
// docstring first): `forward` runs the recurrence over precomputed input
// projections `Z` (overwritten with the gate pre-activations), `backward`
// runs it in reverse and returns the gradient w.r.t. the pre-activations,
// `step` is one inference step for streaming. Per step: one GEMM (BLAS
// `?gemm_` when torch exports it, else at::mm) and one fused pointwise pass
// over the batch, written as plain loops that gcc vectorises.
//
// Semantics are those of lstmcompat._engine.reference (see spec.py):
//   z_k = x W_k + h R_k + b_k; i = ract(z_i + w_i c); f = ract(z_f + w_f c)
//   c' = clip(f c + i act(z_g)); o = ract(z_o + w_o c'); h' = clip((o act(c')) P)
// with "carry" (Keras) or "zero" (TF1) masking.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#ifdef LSTMCOMPAT_BLAS
extern "C" {
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b,
            const int* ldb, const double* beta, double* c, const int* ldc);
}
#endif

namespace {

using at::Tensor;

// Row-major C (M x N) = op(A) op(B) + beta C, op(A) (M x K), op(B) (K x N).
template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < N; ++j) C[r * ldc + j] = beta == T(0) ? T(0) : C[r * ldc + j] * beta;
    return;
  }
#ifdef LSTMCOMPAT_BLAS
  // Column-major view: C^T (N x M) = op(B)^T op(A)^T.
  const char tra = ta ? 'T' : 'N', trb = tb ? 'T' : 'N';
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  const int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
  const T one = 1;
  if constexpr (std::is_same_v<T, float>) {
    sgemm_(&trb, &tra, &m, &n, &k, &one, B, &lb, A, &la, &beta, C, &lc);
  } else {
    dgemm_(&trb, &tra, &m, &n, &k, &one, B, &lb, A, &la, &beta, C, &lc);
  }
#else
  auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  Tensor a = ta ? at::from_blob(const_cast<T*>(A), {K, M}, {lda, 1}, opts).t()
                : at::from_blob(const_cast<T*>(A), {M, K}, {lda, 1}, opts);
  Tensor b = tb ? at::from_blob(const_cast<T*>(B), {N, K}, {ldb, 1}, opts).t()
                : at::from_blob(const_cast<T*>(B), {K, N}, {ldb, 1}, opts);
  Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, opts);
  Tensor r = at::mm(a, b);
  if (beta == T(0)) c.copy_(r); else c.mul_(beta).add_(r);
#endif
}

// ---------------------------------------------------------------- activations
// Float versions avoid libm calls so that the loops vectorise; they are the
// Cephes single-precision algorithms (about 1-2 ulp). Double uses libm.

inline float exp_f(float x) {
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

inline float tanh_f(float x) {
  const float ax = x < 0 ? -x : x;
  const float z = x * x;
  const float small = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z +
                        1.33314422036E-1f) * z - 3.33332819422E-1f) * z * x + x;
  const float e = exp_f(ax + ax);
  float big = 1.0f - 2.0f / (e + 1.0f);
  big = x < 0 ? -big : big;
  return ax < 0.625f ? small : big;
}

template <typename T> inline T exp_t(T x) { return std::exp(x); }
template <> inline float exp_t<float>(float x) { return exp_f(x); }
template <typename T> inline T tanh_t(T x) { return std::tanh(x); }
template <> inline float tanh_t<float>(float x) { return tanh_f(x); }
template <typename T> inline T sigmoid_t(T x) { return T(1) / (T(1) + exp_t<T>(-x)); }
template <typename T> inline T expm1_t(T x) { return std::expm1(x); }
template <> inline float expm1_t<float>(float x) { return exp_f(x) - 1.0f; }

constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

// Activation codes (see _acts.py): 0 linear, 1 tanh, 2 sigmoid, 3 hard_sigmoid,
// 4 relu, 5 softsign, 6 exponential, 7 elu, 8 selu, 9 swish.
template <typename T>
inline T act_f(int a, T x) {
  switch (a) {
    case 0: return x;
    case 1: return tanh_t<T>(x);
    case 2: return sigmoid_t<T>(x);
    case 3: {
      const T t = x * T(0.2) + T(0.5);
      return t < T(0) ? T(0) : (t > T(1) ? T(1) : t);
    }
    case 4: return x < T(0) ? T(0) : x;
    case 5: return x / (T(1) + (x < 0 ? -x : x));
    case 6: return exp_t<T>(x);
    case 7: return x > T(0) ? x : expm1_t<T>(x);
    case 8: return T(kSeluScale) * (x > T(0) ? x : T(kSeluAlpha) * expm1_t<T>(x));
    default: return x * sigmoid_t<T>(x);  // 9 swish
  }
}

// d act / dx at x, given y = act(x).
template <typename T>
inline T act_d(int a, T x, T y) {
  switch (a) {
    case 0: return T(1);
    case 1: return T(1) - y * y;
    case 2: return y * (T(1) - y);
    case 3: {
      const T t = x * T(0.2) + T(0.5);
      return (t >= T(0) && t <= T(1)) ? T(0.2) : T(0);
    }
    case 4: return y > T(0) ? T(1) : T(0);
    case 5: {
      const T d = T(1) + (x < 0 ? -x : x);
      return T(1) / (d * d);
    }
    case 6: return y;
    case 7: return x > T(0) ? T(1) : exp_t<T>(x);
    case 8: return x > T(0) ? T(kSeluScale) : T(kSeluScale * kSeluAlpha) * exp_t<T>(x);
    default: {
      const T s = sigmoid_t<T>(x);
      return s + x * (s * (T(1) - s));
    }
  }
}

// Compile-time activation when A >= 0 (the switch folds away), else runtime.
template <typename T, int A> inline T F(int a, T x) { return act_f<T>(A >= 0 ? A : a, x); }
template <typename T, int A> inline T D(int a, T x, T y) { return act_d<T>(A >= 0 ? A : a, x, y); }

template <typename T> inline T clampv(T v, T lo, T hi) { return v < lo ? lo : (v > hi ? hi : v); }

struct Config {
  int64_t T, B, U, Pn, D;  // steps, batch, units, output size, depth (step only)
  int act, ract;
  bool has_clip, has_pclip, carry;
  double clip, pclip;
};

template <typename T> const T* opt_ptr(const c10::optional<Tensor>& t) {
  return t.has_value() && t->defined() ? t->data_ptr<T>() : nullptr;
}

// ------------------------------------------------------------------ forward
// Pointwise part of one step for one batch row: reads z (4u) and c_prev,
// writes the pre-activations back into z (peepholes added), the pre-clip cell
// into cpre, the new cell (post-clip) into c_next and o * act(c') into hu.
// Branch-free so that gcc vectorises it (no clip: bounds are +-inf).
template <typename T, int A, int RA, bool PEEP>
void row_fwd(int64_t U, int a, int ra, T lo, T hi, T* __restrict zr, const T* __restrict cp,
             T* __restrict cn, T* __restrict cpr, T* __restrict hr, const T* __restrict peep) {
  for (int64_t j = 0; j < U; ++j) {
    T zi = zr[j], zf = zr[U + j];
    if constexpr (PEEP) {
      zi = zi + peep[j] * cp[j];
      zf = zf + peep[U + j] * cp[j];
      zr[j] = zi;
      zr[U + j] = zf;
    }
    const T i = F<T, RA>(ra, zi), f = F<T, RA>(ra, zf), g = F<T, A>(a, zr[2 * U + j]);
    const T c1 = f * cp[j] + i * g;
    const T c2 = clampv(c1, lo, hi);
    cpr[j] = c1;
    cn[j] = c2;
    T zo = zr[3 * U + j];
    if constexpr (PEEP) {
      zo = zo + peep[2 * U + j] * c2;
      zr[3 * U + j] = zo;
    }
    hr[j] = F<T, RA>(ra, zo) * F<T, A>(a, c2);
  }
}

// cpre: (B, u) destination for the pre-clip cell (a scratch buffer when not saved).
template <typename T, int A, int RA>
void pointwise_fwd(const Config& cf, T* z, const T* c_prev, T* c_next, T* cpre, T* hu,
                   const T* peep) {
  const int64_t U = cf.U;
  const T inf = std::numeric_limits<T>::infinity();
  const T lo = cf.has_clip ? static_cast<T>(-cf.clip) : -inf;
  const T hi = cf.has_clip ? static_cast<T>(cf.clip) : inf;
  for (int64_t b = 0; b < cf.B; ++b) {
    if (peep)
      row_fwd<T, A, RA, true>(U, cf.act, cf.ract, lo, hi, z + b * 4 * U, c_prev + b * U,
                              c_next + b * U, cpre + b * U, hu + b * U, peep);
    else
      row_fwd<T, A, RA, false>(U, cf.act, cf.ract, lo, hi, z + b * 4 * U, c_prev + b * U,
                               c_next + b * U, cpre + b * U, hu + b * U, peep);
  }
}

template <typename T, int A, int RA>
std::vector<Tensor> forward_impl(const Config& cf, Tensor Z, const Tensor& R, const Tensor& h0,
                                 const Tensor& c0, const c10::optional<Tensor>& dmh_t,
                                 const c10::optional<Tensor>& peep_t,
                                 const c10::optional<Tensor>& P_t,
                                 const c10::optional<Tensor>& mask_t, bool save) {
  const int64_t Tn = cf.T, B = cf.B, U = cf.U, Pn = cf.Pn;
  auto opts = Z.options();
  const T* Rp = R.data_ptr<T>();
  const T* dmh = opt_ptr<T>(dmh_t);
  const int64_t G = dmh ? dmh_t->size(0) : 0;
  const T* peep = opt_ptr<T>(peep_t);
  const T* P = opt_ptr<T>(P_t);
  const bool* mask = mask_t.has_value() && mask_t->defined() ? mask_t->data_ptr<bool>() : nullptr;
  const T pclip = static_cast<T>(cf.pclip);

  Tensor outputs = at::empty({Tn, B, Pn}, opts);
  Tensor empty = at::empty({0}, opts);
  Tensor C = save ? at::empty({Tn, B, U}, opts) : at::empty({2, B, U}, opts);
  Tensor Cpre = save && cf.has_clip ? at::empty({Tn, B, U}, opts) : empty;
  // h state after each step: the outputs themselves without a mask.
  Tensor Hs = mask ? (save ? at::empty({Tn, B, Pn}, opts) : at::empty({2, B, Pn}, opts)) : outputs;
  Tensor Rpre = save && cf.has_pclip ? at::empty({Tn, B, Pn}, opts) : empty;
  Tensor hu_t = at::empty({B, U}, opts);
  Tensor hn_t = P ? at::empty({B, Pn}, opts) : empty;
  Tensor hin_t = dmh ? at::empty({B, Pn}, opts) : empty;
  Tensor cpre_scratch = cf.has_clip && save ? empty : at::empty({B, U}, opts);
  std::vector<uint8_t> seen(B, 0);

  T* Zp = Z.data_ptr<T>();
  T* Op = outputs.data_ptr<T>();
  T* Cp = C.data_ptr<T>();
  T* Hp = Hs.data_ptr<T>();
  T* hu = hu_t.data_ptr<T>();
  T* hn = P ? hn_t.data_ptr<T>() : nullptr;
  T* hin = dmh ? hin_t.data_ptr<T>() : nullptr;
  const bool hs_ring = mask && !save;
  const bool c_ring = !save;

  for (int64_t s = 0; s < Tn; ++s) {
    T* z = Zp + s * B * 4 * U;
    const T* h_prev = s == 0 ? h0.data_ptr<T>() : Hp + (hs_ring ? (s - 1) % 2 : s - 1) * B * Pn;
    T* h_next = Hp + (hs_ring ? s % 2 : s) * B * Pn;
    const T* c_prev = s == 0 ? c0.data_ptr<T>() : Cp + (c_ring ? (s - 1) % 2 : s - 1) * B * U;
    T* c_next = Cp + (c_ring ? s % 2 : s) * B * U;
    // Recurrent GEMM, into the gate buffer.
    if (!dmh) {
      gemm<T>(false, false, B, 4 * U, Pn, h_prev, Pn, Rp, 4 * U, T(1), z, 4 * U);
    } else {
      for (int64_t k = 0; k < (G == 1 ? 1 : 4); ++k) {
        const T* mk = dmh + k * B * Pn;
        for (int64_t e = 0; e < B * Pn; ++e) hin[e] = h_prev[e] * mk[e];
        if (G == 1)
          gemm<T>(false, false, B, 4 * U, Pn, hin, Pn, Rp, 4 * U, T(1), z, 4 * U);
        else
          gemm<T>(false, false, B, U, Pn, hin, Pn, Rp + k * U, 4 * U, T(1), z + k * U, 4 * U);
      }
    }
    T* cpre = save && cf.has_clip ? Cpre.data_ptr<T>() + s * B * U : cpre_scratch.data_ptr<T>();
    pointwise_fwd<T, A, RA>(cf, z, c_prev, c_next, cpre, hu, peep);
    const T* r = hu;
    if (P) {
      gemm<T>(false, false, B, Pn, U, hu, U, P, Pn, T(0), hn, Pn);
      r = hn;
    }
    T* rpre = save && cf.has_pclip ? Rpre.data_ptr<T>() + s * B * Pn : nullptr;
    T* out = Op + s * B * Pn;
    for (int64_t b = 0; b < B; ++b) {
      const bool m = mask ? mask[s * B + b] : true;
      const T* rr = r + b * Pn;
      T* hr = h_next + b * Pn;
      if (rpre) std::memcpy(rpre + b * Pn, rr, sizeof(T) * Pn);
      if (m) {
        if (cf.has_pclip)
          for (int64_t j = 0; j < Pn; ++j) hr[j] = clampv(rr[j], -pclip, pclip);
        else
          std::memcpy(hr, rr, sizeof(T) * Pn);
        seen[b] = 1;
      } else {
        std::memcpy(hr, h_prev + b * Pn, sizeof(T) * Pn);
        std::memcpy(c_next + b * U, c_prev + b * U, sizeof(T) * U);
      }
      if (mask) {
        T* o = out + b * Pn;
        if (m || (cf.carry && seen[b]))
          std::memcpy(o, hr, sizeof(T) * Pn);
        else
          std::memset(o, 0, sizeof(T) * Pn);
      }
    }
  }
  const int64_t last = Tn - 1;
  Tensor hT = Tn == 0 ? h0.clone() : (hs_ring ? Hs[last % 2] : Hs[last]).clone();
  Tensor cT = Tn == 0 ? c0.clone() : (c_ring ? C[last % 2] : C[last]).clone();
  if (!save) return {outputs, hT, cT, empty, empty, empty, empty};
  return {outputs, hT, cT, C, Cpre, mask ? Hs : empty, Rpre};
}

// ----------------------------------------------------------------- backward
// Pointwise gradient of one step for one (unmasked) batch row. In: the saved
// pre-activations zr, the new cell cn, the previous cell cp, the pre-clip cell
// cpre (cn itself without clip; clip = inf), the gradient dhu w.r.t.
// o * act(c') and, in dc, the gradient w.r.t. c'. Out: dz, dc (now w.r.t. the
// previous cell), hu = o * act(c'), and the peephole gradient sums in dpp.
template <typename T, int A, int RA, bool PEEP>
void row_bwd(int64_t U, int a, int ra, T clip, const T* __restrict zr, const T* __restrict cn,
             const T* __restrict cp, const T* __restrict cpre, const T* __restrict dhr,
             T* __restrict dcr, T* __restrict dzr, T* __restrict hur, const T* __restrict peep,
             T* __restrict dpp) {
  for (int64_t j = 0; j < U; ++j) {
    const T zi = zr[j], zf = zr[U + j], zg = zr[2 * U + j], zo = zr[3 * U + j];
    const T i = F<T, RA>(ra, zi), f = F<T, RA>(ra, zf), g = F<T, A>(a, zg);
    const T o = F<T, RA>(ra, zo), ac = F<T, A>(a, cn[j]);
    hur[j] = o * ac;
    const T dzo = dhr[j] * ac * D<T, RA>(ra, zo, o);
    T dct = dcr[j] + dhr[j] * o * D<T, A>(a, cn[j], ac);
    if constexpr (PEEP) dct = dct + dzo * peep[2 * U + j];
    dct = (cpre[j] >= -clip && cpre[j] <= clip) ? dct : T(0);
    const T dzi = dct * g * D<T, RA>(ra, zi, i);
    const T dzf = dct * cp[j] * D<T, RA>(ra, zf, f);
    dzr[j] = dzi;
    dzr[U + j] = dzf;
    dzr[2 * U + j] = dct * i * D<T, A>(a, zg, g);
    dzr[3 * U + j] = dzo;
    T dcp = dct * f;
    if constexpr (PEEP) {
      dcp = dcp + dzi * peep[j] + dzf * peep[U + j];
      dpp[j] += dzi * cp[j];
      dpp[U + j] += dzf * cp[j];
      dpp[2 * U + j] += dzo * cn[j];
    }
    dcr[j] = dcp;
  }
}

template <typename T, int A, int RA>
std::vector<Tensor> backward_impl(const Config& cf, const Tensor& Z, const Tensor& C,
                                  const Tensor& Cpre, const Tensor& Rpre, const Tensor& c0,
                                  const Tensor& R, const c10::optional<Tensor>& dmh_t,
                                  const c10::optional<Tensor>& peep_t,
                                  const c10::optional<Tensor>& P_t,
                                  const c10::optional<Tensor>& mask_t, const Tensor& dout,
                                  const Tensor& dhT, const Tensor& dcT) {
  const int64_t Tn = cf.T, B = cf.B, U = cf.U, Pn = cf.Pn;
  auto opts = Z.options();
  const T* Rp = R.data_ptr<T>();
  const T* dmh = opt_ptr<T>(dmh_t);
  const int64_t G = dmh ? dmh_t->size(0) : 0;
  const T* peep = opt_ptr<T>(peep_t);
  const T* P = opt_ptr<T>(P_t);
  const bool* mask = mask_t.has_value() && mask_t->defined() ? mask_t->data_ptr<bool>() : nullptr;
  const T clip = cf.has_clip ? static_cast<T>(cf.clip) : std::numeric_limits<T>::infinity();
  const T pclip = static_cast<T>(cf.pclip);
  const int a = cf.act, ra = cf.ract;

  Tensor hu_scratch_t = at::empty({U}, opts);
  T* hu_scratch = hu_scratch_t.data_ptr<T>();
  Tensor dZ = at::empty({Tn, B, 4 * U}, opts);
  Tensor empty = at::empty({0}, opts);
  Tensor HU = P ? at::empty({Tn, B, U}, opts) : empty;
  Tensor dRp = P ? at::empty({Tn, B, Pn}, opts) : empty;
  Tensor dpeep = peep ? at::zeros({3, U}, opts) : empty;
  Tensor dh_t = dhT.clone(), dc_t = dcT.clone();
  Tensor dhp_t = at::empty({B, Pn}, opts);
  Tensor tmp_t = G == 4 ? at::empty({B, Pn}, opts) : empty;
  Tensor dhn_buf = at::empty({B, Pn}, opts);
  Tensor dhu_buf = P ? at::empty({B, U}, opts) : empty;
  Tensor acc_t = at::zeros({B, Pn}, opts);
  T* dh = dh_t.data_ptr<T>();
  T* dc = dc_t.data_ptr<T>();
  T* dhp = dhp_t.data_ptr<T>();
  T* acc = acc_t.data_ptr<T>();
  const T* Zp = Z.data_ptr<T>();
  const T* Cp = C.data_ptr<T>();
  const T* Dp = dout.data_ptr<T>();
  T* dZp = dZ.data_ptr<T>();
  T* dpp = peep ? dpeep.data_ptr<T>() : nullptr;

  for (int64_t s = Tn - 1; s >= 0; --s) {
    const T* z = Zp + s * B * 4 * U;
    const T* cn_all = Cp + s * B * U;
    const T* cprev_all = s == 0 ? c0.data_ptr<T>() : Cp + (s - 1) * B * U;
    const T* dout_s = Dp + s * B * Pn;
    T* dz = dZp + s * B * 4 * U;
    // Gradient w.r.t. this step's new h (post clip) per row, then pre-clip.
    T* dhn = P ? dRp.data_ptr<T>() + s * B * Pn : dhn_buf.data_ptr<T>();
    for (int64_t b = 0; b < B; ++b) {
      const bool m = mask ? mask[s * B + b] : true;
      T* d = dhn + b * Pn;
      const T* g = dout_s + b * Pn;
      const T* hh = dh + b * Pn;
      T* ac = acc + b * Pn;
      if (!mask) {
        for (int64_t j = 0; j < Pn; ++j) d[j] = hh[j] + g[j];
      } else if (cf.carry) {
        if (m) {
          for (int64_t j = 0; j < Pn; ++j) { d[j] = hh[j] + g[j] + ac[j]; ac[j] = T(0); }
        } else {
          for (int64_t j = 0; j < Pn; ++j) { d[j] = T(0); ac[j] += g[j]; }
        }
      } else {
        for (int64_t j = 0; j < Pn; ++j) d[j] = m ? hh[j] + g[j] : T(0);
      }
      if (cf.has_pclip && m) {
        const T* rp = Rpre.data_ptr<T>() + s * B * Pn + b * Pn;
        for (int64_t j = 0; j < Pn; ++j) d[j] = (rp[j] >= -pclip && rp[j] <= pclip) ? d[j] : T(0);
      }
    }
    const T* dhu = dhn;
    if (P) {
      gemm<T>(false, true, B, U, Pn, dhn, Pn, P, Pn, T(0), dhu_buf.data_ptr<T>(), U);
      dhu = dhu_buf.data_ptr<T>();
    }
    T* hu_s = P ? HU.data_ptr<T>() + s * B * U : nullptr;
    for (int64_t b = 0; b < B; ++b) {
      const bool m = mask ? mask[s * B + b] : true;
      T* dzr = dz + b * 4 * U;
      T* dcr = dc + b * U;
      if (!m) {
        std::memset(dzr, 0, sizeof(T) * 4 * U);
        if (hu_s) std::memset(hu_s + b * U, 0, sizeof(T) * U);
        continue;  // the cell state is held: dc passes through unchanged
      }
      const T* cpre = cf.has_clip ? Cpre.data_ptr<T>() + s * B * U + b * U : cn_all + b * U;
      T* hur = hu_s ? hu_s + b * U : hu_scratch;
      if (peep)
        row_bwd<T, A, RA, true>(U, a, ra, clip, z + b * 4 * U, cn_all + b * U,
                                cprev_all + b * U, cpre, dhu + b * U, dcr, dzr, hur, peep, dpp);
      else
        row_bwd<T, A, RA, false>(U, a, ra, clip, z + b * 4 * U, cn_all + b * U,
                                 cprev_all + b * U, cpre, dhu + b * U, dcr, dzr, hur, peep, dpp);
    }
    // dh_prev = dz R^T (times the recurrent dropout mask); masked rows pass dh.
    if (!dmh || G == 1) {
      gemm<T>(false, true, B, Pn, 4 * U, dz, 4 * U, Rp, 4 * U, T(0), dhp, Pn);
      if (dmh)
        for (int64_t e = 0; e < B * Pn; ++e) dhp[e] *= dmh[e];
    } else {
      T* tmp = tmp_t.data_ptr<T>();
      for (int64_t e = 0; e < B * Pn; ++e) dhp[e] = T(0);
      for (int64_t k = 0; k < 4; ++k) {
        gemm<T>(false, true, B, Pn, U, dz + k * U, 4 * U, Rp + k * U, 4 * U, T(0), tmp, Pn);
        const T* mk = dmh + k * B * Pn;
        for (int64_t e = 0; e < B * Pn; ++e) dhp[e] += tmp[e] * mk[e];
      }
    }
    if (mask) {
      for (int64_t b = 0; b < B; ++b)
        if (!mask[s * B + b])
          for (int64_t j = 0; j < Pn; ++j) dhp[b * Pn + j] += dh[b * Pn + j];
    }
    std::swap(dh, dhp);
  }
  Tensor dh0 = dh == dh_t.data_ptr<T>() ? dh_t : dhp_t;
  return {dZ, dh0, dc_t, HU, dRp, dpeep};
}

// ------------------------------------------------------------- dispatching
template <template <typename, int, int> class Impl, typename T, typename... Args>
auto by_acts(int act, int ract, Args&&... args) {
  if (act == 1 && ract == 2) return Impl<T, 1, 2>::run(std::forward<Args>(args)...);
  if (act == 1 && ract == 3) return Impl<T, 1, 3>::run(std::forward<Args>(args)...);
  if (act == 1) return Impl<T, 1, -1>::run(std::forward<Args>(args)...);
  if (ract == 2) return Impl<T, -1, 2>::run(std::forward<Args>(args)...);
  if (ract == 3) return Impl<T, -1, 3>::run(std::forward<Args>(args)...);
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

void check_opt(const c10::optional<Tensor>& t, at::ScalarType st) {
  if (t.has_value() && t->defined()) check_inputs({&*t}, st);
}

std::vector<Tensor> fused_forward(Tensor Z, const Tensor& R, const Tensor& h0, const Tensor& c0,
                                  const c10::optional<Tensor>& dmh,
                                  const c10::optional<Tensor>& peep,
                                  const c10::optional<Tensor>& P,
                                  const c10::optional<Tensor>& mask, int64_t act, int64_t ract,
                                  c10::optional<double> clip, c10::optional<double> pclip,
                                  bool carry, bool save) {
  const auto st = Z.scalar_type();
  check_inputs({&Z, &R, &h0, &c0}, st);
  check_opt(dmh, st);
  check_opt(peep, st);
  check_opt(P, st);
  if (mask.has_value() && mask->defined())
    TORCH_CHECK(mask->is_contiguous() && mask->scalar_type() == at::kBool, "mask: contiguous bool");
  Config cf = make_config(Z, R, act, ract, clip, pclip, carry);
  if (st == at::kFloat)
    return by_acts<Fwd, float>(cf.act, cf.ract, cf, Z, R, h0, c0, dmh, peep, P, mask, save);
  TORCH_CHECK(st == at::kDouble, "lstmcompat fused: float32 or float64 expected");
  return by_acts<Fwd, double>(cf.act, cf.ract, cf, Z, R, h0, c0, dmh, peep, P, mask, save);
}

std::vector<Tensor> fused_backward(const Tensor& Z, const Tensor& C, const Tensor& Cpre,
                                   const Tensor& Rpre, const Tensor& c0, const Tensor& R,
                                   const c10::optional<Tensor>& dmh,
                                   const c10::optional<Tensor>& peep,
                                   const c10::optional<Tensor>& P,
                                   const c10::optional<Tensor>& mask, const Tensor& dout,
                                   const Tensor& dhT, const Tensor& dcT, int64_t act,
                                   int64_t ract, c10::optional<double> clip,
                                   c10::optional<double> pclip, bool carry) {
  const auto st = Z.scalar_type();
  check_inputs({&Z, &C, &Cpre, &Rpre, &c0, &R, &dout, &dhT, &dcT}, st);
  check_opt(dmh, st);
  check_opt(peep, st);
  check_opt(P, st);
  if (mask.has_value() && mask->defined())
    TORCH_CHECK(mask->is_contiguous() && mask->scalar_type() == at::kBool, "mask: contiguous bool");
  Config cf = make_config(Z, R, act, ract, clip, pclip, carry);
  if (st == at::kFloat)
    return by_acts<Bwd, float>(cf.act, cf.ract, cf, Z, C, Cpre, Rpre, c0, R, dmh, peep, P, mask,
                               dout, dhT, dcT);
  TORCH_CHECK(st == at::kDouble, "lstmcompat fused: float32 or float64 expected");
  return by_acts<Bwd, double>(cf.act, cf.ract, cf, Z, C, Cpre, Rpre, c0, R, dmh, peep, P, mask,
                              dout, dhT, dcT);
}

// One inference step: z = b + x W + h R, then the forward pointwise pass.
template <typename T>
void project_step(const Tensor& x, const Tensor& W, const c10::optional<Tensor>& b, Tensor& z) {
  const int64_t B = x.size(0), Dd = x.size(1), G4 = W.size(1);
  T* zp = z.data_ptr<T>();
  const T* bp = opt_ptr<T>(b);
  if (bp)
    for (int64_t r = 0; r < B; ++r) std::memcpy(zp + r * G4, bp, sizeof(T) * G4);
  gemm<T>(false, false, B, G4, Dd, x.data_ptr<T>(), Dd, W.data_ptr<T>(), G4, bp ? T(1) : T(0),
          zp, G4);
}

std::vector<Tensor> fused_step(const Tensor& x, const Tensor& W, const Tensor& R,
                               const c10::optional<Tensor>& b, const Tensor& h, const Tensor& c,
                               const c10::optional<Tensor>& peep, const c10::optional<Tensor>& P,
                               int64_t act, int64_t ract, c10::optional<double> clip,
                               c10::optional<double> pclip) {
  const auto st = x.scalar_type();
  check_inputs({&x, &W, &R, &h, &c}, st);
  check_opt(b, st);
  check_opt(peep, st);
  check_opt(P, st);
  Tensor z = at::empty({1, x.size(0), W.size(1)}, x.options());
  Tensor z2 = z[0];
  if (st == at::kFloat) project_step<float>(x, W, b, z2);
  else project_step<double>(x, W, b, z2);
  auto r = fused_forward(z, R, h, c, c10::nullopt, peep, P, c10::nullopt, act, ract, clip, pclip,
                         true, false);
  return {r[1], r[2]};
}

}  // namespace

TORCH_LIBRARY(lstmcompat_fused, m) {
  m.def("forward(Tensor(a!) Z, Tensor R, Tensor h0, Tensor c0, Tensor? dmh, Tensor? peep, "
        "Tensor? P, Tensor? mask, int act, int ract, float? cell_clip, float? proj_clip, "
        "bool carry, bool save) -> Tensor[]");
  m.def("backward(Tensor Z, Tensor C, Tensor Cpre, Tensor Rpre, Tensor c0, Tensor R, "
        "Tensor? dmh, Tensor? peep, Tensor? P, Tensor? mask, Tensor dout, Tensor dhT, "
        "Tensor dcT, int act, int ract, float? cell_clip, float? proj_clip, bool carry) "
        "-> Tensor[]");
  m.def("step(Tensor x, Tensor W, Tensor R, Tensor? b, Tensor h, Tensor c, Tensor? peep, "
        "Tensor? P, int act, int ract, float? cell_clip, float? proj_clip) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(lstmcompat_fused, CPU, m) {
  m.impl("forward", &fused_forward);
  m.impl("backward", &fused_backward);
  m.impl("step", &fused_step);
}
