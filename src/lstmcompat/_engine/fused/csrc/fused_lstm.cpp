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
#include <ATen/ATen.h>
#include <torch/library.h>

#include "fused_lstm.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef LSTMCOMPAT_BLAS
extern "C" {
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b,
            const int* ldb, const double* beta, double* c, const int* ldc);
void sgemv_(const char* t, const int* m, const int* n, const float* alpha, const float* a,
            const int* lda, const float* x, const int* incx, const float* beta, float* y,
            const int* incy);
void dgemv_(const char* t, const int* m, const int* n, const double* alpha, const double* a,
            const int* lda, const double* x, const int* incx, const double* beta, double* y,
            const int* incy);
}
#endif

#ifdef LSTMCOMPAT_PACKED_GEMM
// MKL's packed GEMM (CBLAS enums passed as their int values; MKL_INT is int).
extern "C" {
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k);
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* src, int ld, float* dest);
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k,
                         const float* a, int lda, const float* b, int ldb, float beta, float* c,
                         int ldc);
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
  if (M == 1 && !ta) {
    // One row (batch 1: streaming steps): y^T = op(B)^T a^T as a matrix-vector
    // product, which BLAS runs faster than a one-column GEMM. B is row-major
    // (K x N) -- column-major (N x K) -- or, with tb, row-major (N x K).
    const char tr = tb ? 'T' : 'N';
    const int m = static_cast<int>(tb ? K : N), k = static_cast<int>(tb ? N : K);
    const int lb = static_cast<int>(ldb);
    const int inc = 1;
    const T one = 1;
    if constexpr (std::is_same_v<T, float>) {
      sgemv_(&tr, &m, &k, &one, B, &lb, A, &inc, &beta, C, &inc);
    } else {
      dgemv_(&tr, &m, &k, &one, B, &lb, A, &inc, &beta, C, &inc);
    }
    return;
  }
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

// The right operand op(B) (K x N) of many GEMMs C = A op(B) + beta C with M rows
// (a recurrent kernel over the steps of a sequence). With MKL (float) it is
// packed once into MKL's internal layout, which makes each product 1.2-2x
// faster at batch 16-64 than a plain sgemm; otherwise it is read in place.
template <typename T>
class RightOperand {
 public:
  RightOperand(int64_t M, int64_t N, int64_t K, bool tb, const T* B, int64_t ldb)
      : M_(M), N_(N), K_(K), tb_(tb), B_(B), ldb_(ldb) {
#ifdef LSTMCOMPAT_PACKED_GEMM
    if constexpr (std::is_same_v<T, float>) {
      if (M >= 2 && N > 0 && K > 0) {  // one row: BLAS gemv is faster
        const size_t bytes = cblas_sgemm_pack_get_size(kB, M, N, K);
        packed_ = at::empty({static_cast<int64_t>(bytes)}, at::TensorOptions().dtype(at::kByte));
        cblas_sgemm_pack(kRowMajor, kB, tb ? kTrans : kNoTrans, M, N, K, 1.0f, B, ldb,
                         reinterpret_cast<float*>(packed_.data_ptr()));
      }
    }
#endif
  }
  void mul(const T* A, int64_t lda, T beta, T* C, int64_t ldc) const {
#ifdef LSTMCOMPAT_PACKED_GEMM
    if constexpr (std::is_same_v<T, float>) {
      if (packed_.defined()) {
        cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, M_, N_, K_, A, lda,
                            reinterpret_cast<const float*>(packed_.data_ptr()), ldb_, beta, C,
                            ldc);
        return;
      }
    }
#endif
    gemm<T>(false, tb_, M_, N_, K_, A, lda, B_, ldb_, beta, C, ldc);
  }

 private:
  static constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kB = 162;
  int64_t M_, N_, K_;
  bool tb_;
  const T* B_;
  int64_t ldb_;
  Tensor packed_;
};

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

// ---------------------------------------------------------------- activations
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
template <typename T> inline T expm1_t(T x) { return std::expm1(x); }
template <> inline float expm1_t<float>(float x) { return exp_f(x) - 1.0f; }

constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

// Activation codes (see _acts.py): 0 linear, 1 tanh, 2 sigmoid, 3 hard_sigmoid,
// 4 relu, 5 softsign, 6 exponential, 7 elu, 8 selu, 9 swish, 10 keras3_hard_sigmoid
// (Keras 3's hard_sigmoid: relu6(x + 3) / 6, a true division as TF's).
template <typename T>
LSTMCOMPAT_INLINE T act_f(int a, T x) {
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
    case 10: {
      const T s = x + T(3);
      return (s < T(0) ? T(0) : (s > T(6) ? T(6) : s)) / T(6);  // NaN stays NaN
    }
    default: return x * sigmoid_t<T>(x);  // 9 swish
  }
}

// The gradient w.r.t. x given the gradient g w.r.t. y = act(x), as autograd forms
// it for the reference's expression (see _acts.py): selections select (an exact 0
// even where g is NaN), elu/selu take their slope from the output, and
// keras3_hard_sigmoid multiplies by its mask as TF does.
template <typename T>
inline T act_g(int a, T g, T x, T y) {
  switch (a) {
    case 0: return g;
    case 1: return g * (T(1) - y * y);
    case 2: return g * (T(1) - y) * y;
    case 3: {
      const T t = x * T(0.2) + T(0.5);
      return ((t >= T(0)) & (t <= T(1))) ? g * T(0.2) : T(0);
    }
    case 4: return y <= T(0) ? T(0) : g;
    case 5: {
      const T d = (x < 0 ? -x : x) + T(1);
      const T sg = x > T(0) ? T(1) : (x < T(0) ? T(-1) : x);
      return g / d + (-g * x / (d * d)) * sg;
    }
    case 6: return g * y;
    case 7: return g * (y < T(0) ? y + T(1) : T(1));
    case 8: return g * (y < T(0) ? y + T(kSeluScale * kSeluAlpha) : T(kSeluScale));
    case 10: {  // TF's Relu6Grad: g times the 0/1 mask (NaN/inf g gives NaN), then / 6
      const T s = x + T(3);
      const T m = ((s > T(0)) & (s < T(6))) ? T(1) : T(0);
      return (g * m) / T(6);
    }
    default: {
      const T s = sigmoid_t<T>(x);
      return g * s * (T(1) + x * (T(1) - s));
    }
  }
}

// Compile-time activation when A >= 0 (the switch folds away), else runtime.
template <typename T, int A> LSTMCOMPAT_INLINE T F(int a, T x) { return act_f<T>(A >= 0 ? A : a, x); }
template <typename T, int A> inline T Dg(int a, T g, T x, T y) {
  return act_g<T>(A >= 0 ? A : a, g, x, y);
}

// TF's clip_by_value: maximum(minimum(v, hi), lo), both NaN-propagating, so NaN
// stays NaN, a NaN bound gives NaN and lo wins when lo > hi (a negative clip).
template <typename T> LSTMCOMPAT_INLINE T minv(T a, T b) { return (a > b || b != b) ? b : a; }
template <typename T> LSTMCOMPAT_INLINE T maxv(T a, T b) { return (a < b || b != b) ? b : a; }
template <typename T> LSTMCOMPAT_INLINE T clampv(T v, T lo, T hi) { return maxv(minv(v, hi), lo); }

struct Config {
  int64_t T, B, U, Pn, D;  // steps, batch, units, output size, depth (step only)
  int act, ract;
  bool has_clip, has_pclip, carry;
  double clip, pclip;
};

template <typename T> const T* opt_ptr(const c10::optional<Tensor>& t) {
  return t.has_value() && t->defined() ? t->data_ptr<T>() : nullptr;
}

// ------------------------------------------------------------------ threads
// The time loop runs in one OpenMP parallel region. Thread t owns a slice of
// the units [u0, u1) (and of the output features [p0, p1)): it computes the
// recurrent GEMM for its four gate column blocks (BLAS runs single-threaded
// inside the region) and then the pointwise work of its units, so that one
// barrier per step suffices (two with a projection).
struct Slice {
  int64_t u0, u1, p0, p1;
};

inline int64_t chunk_of(int64_t n, int nt) {
  int64_t c = (n + nt - 1) / nt;
  return (c + 15) / 16 * 16;  // whole cache lines of floats
}

inline Slice slice_of(int t, int nt, int64_t U, int64_t Pn) {
  const int64_t cu = chunk_of(U, nt), cp = chunk_of(Pn, nt);
  Slice s;
  s.u0 = std::min<int64_t>(U, t * cu);
  s.u1 = std::min<int64_t>(U, (t + 1) * cu);
  s.p0 = std::min<int64_t>(Pn, t * cp);
  s.p1 = std::min<int64_t>(Pn, (t + 1) * cp);
  return s;
}

// Threads for a call: none for small problems, where the barrier costs more
// than it saves.
inline int threads_for(int64_t B, int64_t U, int64_t Pn) {
#ifdef _OPENMP
  const int nt = std::min(at::get_num_threads(), omp_get_max_threads());
  if (nt <= 1 || U < 32 * nt || B * 4 * U * Pn < 262144) return 1;
  return static_cast<int>(std::min<int64_t>(nt, U / 32));
#else
  return 1;
#endif
}

inline void barrier(int nt) {
#ifdef _OPENMP
  if (nt > 1) {
#pragma omp barrier
  }
#endif
}

// Run body(t) on nt threads. With one thread no parallel region is opened at
// all: inside even an inactive region BLAS would see a nesting level and
// spawn nested teams on every call.
template <typename Body>
void run_threads(int nt, Body& body) {
#ifdef _OPENMP
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    body(omp_get_thread_num());
    return;
  }
#endif
  body(0);
}

// ------------------------------------------------------------------ forward
// Pointwise part of one step for one batch row and the units [0, n) of the
// pointers (pre-offset to the thread's slice; gate blocks are U apart): reads z
// and c_prev, writes the pre-activations back into z (peepholes added), the
// pre-clip cell into cpr, the new cell (post-clip) into cn and o * act(c') into
// hr. Branch-free so that gcc vectorises it (no clip: bounds are +-inf).
template <typename T, int A, int RA, bool PEEP, bool ADD = false, bool BIAS = false>
void row_fwd(int64_t n, int64_t U, int a, int ra, T lo, T hi, T* __restrict zr,
             const T* __restrict cp, T* __restrict cn, T* __restrict cpr, T* __restrict hr,
             const T* __restrict peep, const T* __restrict zt = nullptr,
             const T* __restrict zb = nullptr) {
  // With ADD, zt holds this step's recurrent term for the n units (gate blocks
  // n apart) and is added to zr first (with BIAS after the bias zb, gate blocks U
  // apart); the sums are stored back into zr.
  for (int64_t j = 0; j < n; ++j) {
    T zi = zr[j], zf = zr[U + j], zg = zr[2 * U + j];
    if constexpr (ADD) {
      if constexpr (BIAS) {  // (x W + b) + h R, the reference's order
        zi = zi + zb[j];
        zf = zf + zb[U + j];
        zg = zg + zb[2 * U + j];
      }
      zi = zi + zt[j];
      zf = zf + zt[n + j];
      zg = zg + zt[2 * n + j];
      zr[2 * U + j] = zg;
    }
    if constexpr (PEEP) {
      zi = zi + peep[j] * cp[j];
      zf = zf + peep[U + j] * cp[j];
    }
    if constexpr (PEEP || ADD) {
      zr[j] = zi;
      zr[U + j] = zf;
    }
    const T i = F<T, RA>(ra, zi), f = F<T, RA>(ra, zf), g = F<T, A>(a, zg);
    const T c1 = f * cp[j] + i * g;
    const T c2 = clampv(c1, lo, hi);
    cpr[j] = c1;
    cn[j] = c2;
    T zo = zr[3 * U + j];
    if constexpr (ADD && BIAS) zo = zo + zb[3 * U + j];
    if constexpr (ADD) zo = zo + zt[3 * n + j];
    if constexpr (PEEP) zo = zo + peep[2 * U + j] * c2;
    if constexpr (PEEP || ADD) zr[3 * U + j] = zo;
    hr[j] = F<T, RA>(ra, zo) * F<T, A>(a, c2);
  }
}

template <typename T, int A, int RA>
std::vector<Tensor> forward_impl(const Config& cf, Tensor Z, const Tensor& R, const Tensor& h0,
                                 const Tensor& c0, const c10::optional<Tensor>& dmh_t,
                                 const c10::optional<Tensor>& peep_t,
                                 const c10::optional<Tensor>& P_t,
                                 const c10::optional<Tensor>& mask_t, bool save,
                                 const c10::optional<Tensor>& bias_t) {
  const int64_t Tn = cf.T, B = cf.B, U = cf.U, Pn = cf.Pn;
  auto opts = Z.options();
  const Mat<T> Rm = mat_of<T>(R);  // read in place, row-major or transposed
  const T* bias = opt_ptr<T>(bias_t);
  const T* dmh = opt_ptr<T>(dmh_t);
  const int64_t G = dmh ? dmh_t->size(0) : 0;
  const T* peep = opt_ptr<T>(peep_t);
  const T* P = opt_ptr<T>(P_t);
  const bool* mask = mask_t.has_value() && mask_t->defined() ? mask_t->data_ptr<bool>() : nullptr;
  const T pclip = static_cast<T>(cf.pclip);
  const T inf = std::numeric_limits<T>::infinity();
  const T lo = cf.has_clip ? static_cast<T>(-cf.clip) : -inf;
  const T hi = cf.has_clip ? static_cast<T>(cf.clip) : inf;
  const bool has_pclip = cf.has_pclip, carry = cf.carry;
  const int nt = threads_for(B, U, Pn);

  Tensor outputs = at::empty({Tn, B, Pn}, opts);
  Tensor empty = at::empty({0}, opts);
  Tensor C = save ? at::empty({Tn, B, U}, opts) : at::empty({2, B, U}, opts);
  Tensor Cpre = save && cf.has_clip ? at::empty({Tn, B, U}, opts) : at::empty({B, U}, opts);
  // h state after each step: the outputs themselves without a mask.
  Tensor Hs = mask ? (save ? at::empty({Tn, B, Pn}, opts) : at::empty({2, B, Pn}, opts)) : outputs;
  Tensor Rpre = save && has_pclip ? at::empty({Tn, B, Pn}, opts) : empty;
  Tensor hu_t = at::empty({B, U}, opts);
  Tensor hn_t = P ? at::empty({B, Pn}, opts) : empty;
  Tensor hin_t = dmh ? at::empty({nt, B, Pn}, opts) : empty;
  Tensor seen_t = at::zeros({nt, B}, at::TensorOptions().dtype(at::kBool));
  // Each thread's columns of the four gate blocks of R, packed side by side,
  // so that its recurrent term is one GEMM per step (into zt). Packing is one
  // pass over R: it pays back over a few steps, not on one (a streaming step
  // with autograd), where four strided GEMMs read R in place.
  const int64_t cmax = chunk_of(U, nt);
  const bool pack_r = Tn >= 4;
  Tensor Rt_t = pack_r ? at::empty({nt, Pn, 4 * cmax}, opts) : empty;
  Tensor zt_t = at::empty({nt, B, 4 * cmax}, opts);

  T* Zp = Z.data_ptr<T>();
  T* Op = outputs.data_ptr<T>();
  T* Cp = C.data_ptr<T>();
  T* Hp = Hs.data_ptr<T>();
  T* CPp = Cpre.data_ptr<T>();
  T* RPp = save && has_pclip ? Rpre.data_ptr<T>() : nullptr;
  T* hu = hu_t.data_ptr<T>();
  T* hn = P ? hn_t.data_ptr<T>() : nullptr;
  T* hin_all = dmh ? hin_t.data_ptr<T>() : nullptr;
  bool* seen_all = seen_t.data_ptr<bool>();
  const T* h0p = h0.data_ptr<T>();
  const T* c0p = c0.data_ptr<T>();
  const bool hs_ring = mask && !save;
  const bool c_ring = !save;
  const bool cpre_saved = save && cf.has_clip;

  auto body = [&](const int t) {
    const Slice sl = slice_of(t, nt, U, Pn);
    const int64_t nu = sl.u1 - sl.u0;
    // Without a projection the output features are the units.
    const int64_t q0 = P ? sl.p0 : sl.u0, q1 = P ? sl.p1 : sl.u1, nq = q1 - q0;
    T* hin = dmh ? hin_all + t * B * Pn : nullptr;
    bool* seen = seen_all + t * B;
    T* zt = zt_t.data_ptr<T>() + t * B * 4 * cmax;
    // Gate block k of this thread's columns of R: columns k * kstep + c0 of rk.
    Mat<T> rk = Rm;
    int64_t kstep = U, c0 = sl.u0;
    if (pack_r) {
      T* rt = Rt_t.data_ptr<T>() + t * Pn * 4 * cmax;
      if (Rm.cs == 1) {
        for (int64_t p = 0; p < Pn; ++p)
          for (int64_t k = 0; k < 4; ++k)
            std::memcpy(rt + p * 4 * nu + k * nu, Rm.at(p, k * U + sl.u0), sizeof(T) * nu);
      } else {  // transposed storage: each column of R is contiguous
        for (int64_t k = 0; k < 4; ++k)
          for (int64_t j = 0; j < nu; ++j) {
            const T* src = Rm.at(0, k * U + sl.u0 + j);
            for (int64_t p = 0; p < Pn; ++p) rt[p * 4 * nu + k * nu + j] = src[p * Rm.rs];
          }
      }
      rk = Mat<T>{rt, 4 * nu, 1};
      kstep = nu;
      c0 = 0;
    }
    std::optional<RightOperand<T>> rop;  // all four gates' columns in one product
    if (pack_r && (!dmh || G == 1)) rop.emplace(B, 4 * nu, Pn, false, rk.p, rk.rs);
    for (int64_t s = 0; s < Tn; ++s) {
      T* z = Zp + s * B * 4 * U;
      const T* h_prev = s == 0 ? h0p : Hp + (hs_ring ? (s - 1) % 2 : s - 1) * B * Pn;
      T* h_next = Hp + (hs_ring ? s % 2 : s) * B * Pn;
      const T* c_prev = s == 0 ? c0p : Cp + (c_ring ? (s - 1) % 2 : s - 1) * B * U;
      T* c_next = Cp + (c_ring ? s % 2 : s) * B * U;
      T* cpre = CPp + (cpre_saved ? s * B * U : 0);
      // Recurrent term of this thread's columns of the four gates: zt.
      if (nu > 0) {
        if (!dmh || G == 1) {
          const T* hk = h_prev;
          if (dmh) {
            for (int64_t e = 0; e < B * Pn; ++e) hin[e] = h_prev[e] * dmh[e];
            hk = hin;
          }
          if (rop)
            rop->mul(hk, Pn, T(0), zt, 4 * nu);
          else
            for (int64_t k = 0; k < 4; ++k)
              gemm<T>(false, rk.trans(), B, nu, Pn, hk, Pn, rk.at(0, k * kstep + c0), rk.ld(),
                      T(0), zt + k * nu, 4 * nu);
        } else {
          for (int64_t k = 0; k < 4; ++k) {
            const T* mk = dmh + k * B * Pn;
            for (int64_t e = 0; e < B * Pn; ++e) hin[e] = h_prev[e] * mk[e];
            gemm<T>(false, rk.trans(), B, nu, Pn, hin, Pn, rk.at(0, k * kstep + c0), rk.ld(),
                    T(0), zt + k * nu, 4 * nu);
          }
        }
        const T* zb = bias ? bias + sl.u0 : nullptr;
        for (int64_t b = 0; b < B; ++b) {
          const int64_t o4 = b * 4 * U + sl.u0, o1 = b * U + sl.u0;
          const T* ztb = zt + b * 4 * nu;
          T* zr = z + o4;
          const T* pe = peep ? peep + sl.u0 : nullptr;
          if (peep && bias)
            row_fwd<T, A, RA, true, true, true>(nu, U, cf.act, cf.ract, lo, hi, zr, c_prev + o1,
                                                c_next + o1, cpre + o1, hu + o1, pe, ztb, zb);
          else if (peep)
            row_fwd<T, A, RA, true, true>(nu, U, cf.act, cf.ract, lo, hi, zr, c_prev + o1,
                                          c_next + o1, cpre + o1, hu + o1, pe, ztb);
          else if (bias)
            row_fwd<T, A, RA, false, true, true>(nu, U, cf.act, cf.ract, lo, hi, zr, c_prev + o1,
                                                 c_next + o1, cpre + o1, hu + o1, pe, ztb, zb);
          else
            row_fwd<T, A, RA, false, true>(nu, U, cf.act, cf.ract, lo, hi, zr, c_prev + o1,
                                           c_next + o1, cpre + o1, hu + o1, pe, ztb);
        }
      }
      const T* r = hu;
      if (P) {
        barrier(nt);  // all of hu is needed by the projection
        if (nq > 0) gemm<T>(false, false, B, nq, U, hu, U, P + q0, Pn, T(0), hn + q0, Pn);
        r = hn;
      }
      // Clip, mask and write this thread's slice of the state and the outputs.
      T* out = Op + s * B * Pn;
      for (int64_t b = 0; b < B; ++b) {
        const bool m = mask ? mask[s * B + b] : true;
        const T* rr = r + b * Pn + q0;
        T* hr = h_next + b * Pn + q0;
        if (RPp) std::memcpy(RPp + s * B * Pn + b * Pn + q0, rr, sizeof(T) * nq);
        if (m) {
          if (has_pclip)
            for (int64_t j = 0; j < nq; ++j) hr[j] = clampv(rr[j], -pclip, pclip);
          else if (hr != rr)
            std::memcpy(hr, rr, sizeof(T) * nq);
          seen[b] = true;
        } else {
          std::memcpy(hr, h_prev + b * Pn + q0, sizeof(T) * nq);
          std::memcpy(c_next + b * U + sl.u0, c_prev + b * U + sl.u0, sizeof(T) * nu);
        }
        if (mask) {
          T* o = out + b * Pn + q0;
          if (m || (carry && seen[b]))
            std::memcpy(o, hr, sizeof(T) * nq);
          else
            std::memset(o, 0, sizeof(T) * nq);
        }
      }
      barrier(nt);  // the next step's GEMM reads all of h_next
    }
  };
  run_threads(nt, body);
  const int64_t last = Tn - 1;
  Tensor hT = Tn == 0 ? h0.clone() : (hs_ring ? Hs[last % 2] : Hs[last]).clone();
  Tensor cT = Tn == 0 ? c0.clone() : (c_ring ? C[last % 2] : C[last]).clone();
  if (!save) return {outputs, hT, cT, empty, empty, empty, empty};
  return {outputs, hT, cT, C, cf.has_clip ? Cpre : empty, mask ? Hs : empty, Rpre};
}

// ----------------------------------------------------------------- backward
// Pointwise gradient of one step for one batch row, units [0, n) of the
// pre-offset pointers (gate blocks U apart). In: the saved pre-activations
// zr, the new cell cn, the previous cell cp, the pre-clip cell cpre (cn itself
// without clip; its mask applies with clip_on only), the gradient dhr w.r.t. o * act(c') and, in dcr, the gradient
// w.r.t. c'. Out: dzr, dcr (now w.r.t. the previous cell), hur = o * act(c'),
// and the peephole gradient sums added into dpp.
template <typename T, int A, int RA, bool PEEP>
void row_bwd(int64_t n, int64_t U, int a, int ra, bool clip_on, T clip, const T* __restrict zr,
             const T* __restrict cn, const T* __restrict cp, const T* __restrict cpre,
             const T* __restrict dhr, T* __restrict dcr, T* __restrict dzr, T* __restrict hur,
             const T* __restrict peep, T* __restrict dpp) {
  for (int64_t j = 0; j < n; ++j) {
    const T zi = zr[j], zf = zr[U + j], zg = zr[2 * U + j], zo = zr[3 * U + j];
    const T i = F<T, RA>(ra, zi), f = F<T, RA>(ra, zf), g = F<T, A>(a, zg);
    const T o = F<T, RA>(ra, zo), ac = F<T, A>(a, cn[j]);
    hur[j] = o * ac;
    const T dzo = Dg<T, RA>(ra, dhr[j] * ac, zo, o);
    T dct = dcr[j] + Dg<T, A>(a, dhr[j] * o, cn[j], ac);
    if constexpr (PEEP) dct = dct + dzo * peep[2 * U + j];
    // the clip's gradient passes where -clip <= cpre <= clip (never for NaN)
    dct = (!clip_on | ((cpre[j] >= -clip) & (cpre[j] <= clip))) ? dct : T(0);
    const T dzi = Dg<T, RA>(ra, dct * g, zi, i);
    const T dzf = Dg<T, RA>(ra, dct * cp[j], zf, f);
    dzr[j] = dzi;
    dzr[U + j] = dzf;
    dzr[2 * U + j] = Dg<T, A>(a, dct * i, zg, g);
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

// The new cell of one held (masked) batch row, which C does not keep: from the
// saved pre-activations zr and the previous cell cp (with clip_on, from the saved
// pre-clip cell cpre). The reference differentiates a held row's step too, with
// zero gradients, so that NaN or inf in it reach the gradients (0 * NaN).
template <typename T, int A, int RA>
void row_cell(int64_t n, int64_t U, int a, int ra, bool clip_on, T clip,
              const T* __restrict zr, const T* __restrict cp, const T* __restrict cpre,
              T* __restrict cn) {
  for (int64_t j = 0; j < n; ++j) {
    const T c1 = clip_on ? cpre[j]
                         : F<T, RA>(ra, zr[U + j]) * cp[j] +
                               F<T, RA>(ra, zr[j]) * F<T, A>(a, zr[2 * U + j]);
    cn[j] = clip_on ? clampv(c1, -clip, clip) : c1;
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
  const Mat<T> RT = mat_of<T>(R).t();  // R^T (4U x Pn), read in place
  const T* dmh = opt_ptr<T>(dmh_t);
  const int64_t G = dmh ? dmh_t->size(0) : 0;
  const T* peep = opt_ptr<T>(peep_t);
  const T* P = opt_ptr<T>(P_t);
  const bool* mask = mask_t.has_value() && mask_t->defined() ? mask_t->data_ptr<bool>() : nullptr;
  const T clip = cf.has_clip ? static_cast<T>(cf.clip) : std::numeric_limits<T>::infinity();
  const T pclip = static_cast<T>(cf.pclip);
  const int a = cf.act, ra = cf.ract;
  const bool has_pclip = cf.has_pclip, carry = cf.carry, has_clip = cf.has_clip;
  const int nt = threads_for(B, U, Pn);

  Tensor dZ = at::empty({Tn, B, 4 * U}, opts);
  Tensor empty = at::empty({0}, opts);
  Tensor HU = P ? at::empty({Tn, B, U}, opts) : at::empty({B, U}, opts);
  Tensor dRp = P ? at::empty({Tn, B, Pn}, opts) : empty;
  Tensor dpeep = peep ? at::zeros({3, U}, opts) : empty;
  Tensor dh_t = dhT.clone(), dc_t = dcT.clone();
  Tensor dhp_t = at::empty({B, Pn}, opts);
  Tensor tmp_t = G == 4 ? at::empty({nt, B, Pn}, opts) : empty;
  Tensor dhn_buf = at::empty({B, Pn}, opts);
  Tensor dhu_buf = P ? at::empty({B, U}, opts) : empty;
  Tensor acc_t = at::zeros({B, Pn}, opts);
  Tensor held_t = mask ? at::empty({2, B, U}, opts) : empty;  // held rows: new cell, dc
  T* held_cn = mask ? held_t.data_ptr<T>() : nullptr;
  T* held_dc = mask ? held_cn + B * U : nullptr;
  T* dh0_ptr = dh_t.data_ptr<T>();
  T* dhp0_ptr = dhp_t.data_ptr<T>();
  T* dc = dc_t.data_ptr<T>();
  T* acc = acc_t.data_ptr<T>();
  const T* Zp = Z.data_ptr<T>();
  const T* Cp = C.data_ptr<T>();
  const T* CPp = has_clip ? Cpre.data_ptr<T>() : nullptr;
  const T* RPp = has_pclip ? Rpre.data_ptr<T>() : nullptr;
  const T* Dp = dout.data_ptr<T>();
  const T* c0p = c0.data_ptr<T>();
  T* dZp = dZ.data_ptr<T>();
  T* dpp = peep ? dpeep.data_ptr<T>() : nullptr;
  T* HUp = HU.data_ptr<T>();
  T* dRpp = P ? dRp.data_ptr<T>() : nullptr;
  T* dhn_all = dhn_buf.data_ptr<T>();
  T* dhu_all = P ? dhu_buf.data_ptr<T>() : nullptr;
  T* tmp_all = G == 4 ? tmp_t.data_ptr<T>() : nullptr;
  T* dh_final = dh0_ptr;

  auto body = [&](const int t) {
    const Slice sl = slice_of(t, nt, U, Pn);
    const int64_t nu = sl.u1 - sl.u0;
    const int64_t q0 = P ? sl.p0 : sl.u0, q1 = P ? sl.p1 : sl.u1, nq = q1 - q0;
    T* dh = dh0_ptr;
    T* dhp = dhp0_ptr;
    T* tmp = tmp_all ? tmp_all + t * B * Pn : nullptr;
    std::optional<RightOperand<T>> rop;  // R^T's columns of this thread's features
    if (nq > 0 && (!dmh || G == 1)) rop.emplace(B, nq, 4 * U, RT.trans(), RT.at(0, q0), RT.ld());
    for (int64_t s = Tn - 1; s >= 0; --s) {
      const T* z = Zp + s * B * 4 * U;
      const T* cn_all = Cp + s * B * U;
      const T* cprev_all = s == 0 ? c0p : Cp + (s - 1) * B * U;
      const T* dout_s = Dp + s * B * Pn;
      T* dz = dZp + s * B * 4 * U;
      // Gradient w.r.t. this step's new h, then w.r.t. it before the clip,
      // for this thread's output features.
      T* dhn = P ? dRpp + s * B * Pn : dhn_all;
      for (int64_t b = 0; b < B; ++b) {
        const bool m = mask ? mask[s * B + b] : true;
        const int64_t o = b * Pn + q0;
        T* d = dhn + o;
        const T* g = dout_s + o;
        const T* hh = dh + o;
        T* ac = acc + o;
        if (!mask) {
          for (int64_t j = 0; j < nq; ++j) d[j] = hh[j] + g[j];
        } else if (carry) {
          if (m) {
            for (int64_t j = 0; j < nq; ++j) {
              d[j] = hh[j] + g[j] + ac[j];
              ac[j] = T(0);
            }
          } else {
            for (int64_t j = 0; j < nq; ++j) {
              d[j] = T(0);
              ac[j] += g[j];
            }
          }
        } else {
          for (int64_t j = 0; j < nq; ++j) d[j] = m ? hh[j] + g[j] : T(0);
        }
        if (has_pclip && m) {
          const T* rp = RPp + s * B * Pn + o;
          for (int64_t j = 0; j < nq; ++j)
            d[j] = ((rp[j] >= -pclip) & (rp[j] <= pclip)) ? d[j] : T(0);
        }
      }
      const T* dhu = dhn;
      if (P) {
        barrier(nt);  // all of dhn is needed by the projection's gradient
        if (nu > 0)
          gemm<T>(false, true, B, nu, Pn, dhn, Pn, P + sl.u0 * Pn, Pn, T(0), dhu_all + sl.u0, U);
        dhu = dhu_all;
      }
      T* hu_s = HUp + (P ? s * B * U : 0);
      for (int64_t b = 0; b < B; ++b) {
        const bool m = mask ? mask[s * B + b] : true;
        const int64_t o4 = b * 4 * U + sl.u0, o1 = b * U + sl.u0;
        T* dzr = dz + o4;
        const T* cpre = CPp ? CPp + s * B * U + o1 : cn_all + o1;
        const T* cn = cn_all + o1;
        T* dcr = dc + o1;
        if (!m) {  // the cell state is held: dc passes through, plus the step's (zero) part
          row_cell<T, A, RA>(nu, U, a, ra, has_clip, clip, z + o4, cprev_all + o1, cpre,
                             held_cn + o1);
          cn = held_cn + o1;
          dcr = held_dc + o1;
          for (int64_t j = 0; j < nu; ++j) dcr[j] = T(0);
        }
        if (peep)
          row_bwd<T, A, RA, true>(nu, U, a, ra, has_clip, clip, z + o4, cn, cprev_all + o1,
                                  cpre, dhu + o1, dcr, dzr, hu_s + o1, peep + sl.u0,
                                  dpp + sl.u0);
        else
          row_bwd<T, A, RA, false>(nu, U, a, ra, has_clip, clip, z + o4, cn, cprev_all + o1,
                                   cpre, dhu + o1, dcr, dzr, hu_s + o1, peep, dpp);
        if (!m)
          for (int64_t j = 0; j < nu; ++j) dc[o1 + j] = dcr[j] + dc[o1 + j];
      }
      barrier(nt);  // dh_prev needs all of dz
      // dh_prev = dz R^T (times the recurrent dropout mask), this thread's features.
      if (nq > 0) {
        if (!dmh || G == 1) {
          rop->mul(dz, 4 * U, T(0), dhp + q0, Pn);
          if (dmh)
            for (int64_t b = 0; b < B; ++b)
              for (int64_t j = q0; j < q1; ++j) dhp[b * Pn + j] *= dmh[b * Pn + j];
        } else {
          for (int64_t b = 0; b < B; ++b)
            for (int64_t j = q0; j < q1; ++j) dhp[b * Pn + j] = T(0);
          for (int64_t k = 0; k < 4; ++k) {
            gemm<T>(false, RT.trans(), B, nq, U, dz + k * U, 4 * U, RT.at(k * U, q0), RT.ld(),
                    T(0), tmp + q0, Pn);
            const T* mk = dmh + k * B * Pn;
            for (int64_t b = 0; b < B; ++b)
              for (int64_t j = q0; j < q1; ++j) dhp[b * Pn + j] += tmp[b * Pn + j] * mk[b * Pn + j];
          }
        }
        if (mask)
          for (int64_t b = 0; b < B; ++b)
            if (!mask[s * B + b])
              for (int64_t j = q0; j < q1; ++j) dhp[b * Pn + j] += dh[b * Pn + j];
      }
      std::swap(dh, dhp);
    }
    if (t == 0) dh_final = dh;
  };
  run_threads(nt, body);
  Tensor dh0 = dh_final == dh0_ptr ? dh_t : dhp_t;
  return {dZ, dh0, dc_t, P ? HU : empty, dRp, dpeep};
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
                                  bool carry, bool save, const c10::optional<Tensor>& bias) {
  const auto st = Z.scalar_type();
  check_inputs({&Z, &h0, &c0}, st);
  check_weight(R, st, "R");
  check_opt(bias, st);
  if (bias.has_value() && bias->defined())
    TORCH_CHECK(bias->numel() == Z.size(2), "bias: (4 * units,) expected");
  check_options(dmh, peep, P, mask, st);
  check_shapes(Z, R, h0, c0, peep, P);
  Config cf = make_config(Z, R, act, ract, clip, pclip, carry);
  if (st == at::kFloat)
    return by_acts<Fwd, float>(cf.act, cf.ract, cf, Z, R, h0, c0, dmh, peep, P, mask, save,
                               bias);
  TORCH_CHECK(st == at::kDouble, "lstmcompat fused: float32 or float64 expected");
  return by_acts<Fwd, double>(cf.act, cf.ract, cf, Z, R, h0, c0, dmh, peep, P, mask, save,
                              bias);
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
  check_inputs({&Z, &C, &Cpre, &Rpre, &c0, &dout, &dhT, &dcT}, st);
  check_weight(R, st, "R");
  check_options(dmh, peep, P, mask, st);
  check_shapes(Z, R, dhT, c0, peep, P);
  Config cf = make_config(Z, R, act, ract, clip, pclip, carry);
  if (st == at::kFloat)
    return by_acts<Bwd, float>(cf.act, cf.ract, cf, Z, C, Cpre, Rpre, c0, R, dmh, peep, P, mask,
                               dout, dhT, dcT);
  TORCH_CHECK(st == at::kDouble, "lstmcompat fused: float32 or float64 expected");
  return by_acts<Bwd, double>(cf.act, cf.ract, cf, Z, C, Cpre, Rpre, c0, R, dmh, peep, P, mask,
                              dout, dhT, dcT);
}

// One inference step (streaming): z = b + x W + h R, then the pointwise pass,
// h' and c' written straight into fresh tensors. Threads own unit slices as in
// the sequence loop, so each keeps its columns of W and R in its own L2 cache
// across calls; without a projection no barrier is needed at all.
// What this build compiled in (reported by extension_status).
std::vector<std::string> features() {
  std::vector<std::string> f;
#ifdef LSTMCOMPAT_BLAS
  f.emplace_back("blas");
#endif
#ifdef LSTMCOMPAT_PACKED_GEMM
  f.emplace_back("mkl-packed-gemm");
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

// Threads for one streaming step.
inline int step_threads(int64_t Dd, int64_t U, int64_t Pn) {
  int nt = 1;
#ifdef _OPENMP
  nt = std::min(at::get_num_threads(), omp_get_max_threads());
  if (U < 32 * nt || (Dd + Pn) * 4 * U < 65536) nt = 1;
  nt = static_cast<int>(std::min<int64_t>(std::max(nt, 1), std::max<int64_t>(U / 32, 1)));
#endif
  return nt;
}

// One step reading W, R and b where they are, in the order they are stored:
// canonical gate k (i, f, g, o) is stored column block gates[k] of W, R and b.
// Nothing derived from the weights is kept between calls, so a step always
// computes with the weights' current values (in-place writes of any kind,
// through .data or NumPy views included).
template <typename T, int A, int RA>
struct Step {
  static std::vector<Tensor> run(const Tensor& x, const Tensor& W, const Tensor& R,
                                 const c10::optional<Tensor>& b_t, double forget_bias,
                                 const Tensor& h, const Tensor& c,
                                 const c10::optional<Tensor>& peep_t,
                                 const c10::optional<Tensor>& P_t, int act, int ract,
                                 c10::optional<double> clip, c10::optional<double> pclip,
                                 const std::array<int64_t, 4>& gates, bool save) {
    const int64_t B = x.size(0), Dd = x.size(1), U = W.size(1) / 4;
    const int64_t Pn = R.defined() ? R.size(0) : h.size(1);
    auto opts = x.options();
    const T* bp = opt_ptr<T>(b_t);
    const int64_t bs = bp ? b_t->stride(0) : 1;
    const T* peep = opt_ptr<T>(peep_t);
    const T* P = opt_ptr<T>(P_t);
    const T* xp = x.data_ptr<T>();
    const T* hp = h.data_ptr<T>();
    const T* cp = c.data_ptr<T>();
    // Without R, W holds both: rows [0, depth) then the recurrent rows.
    const Mat<T> Wm = mat_of<T>(W);
    const Mat<T> Rm = R.defined() ? mat_of<T>(R) : Mat<T>{Wm.p + Dd * Wm.rs, Wm.rs, Wm.cs};
    const T inf = std::numeric_limits<T>::infinity();
    const T lo = clip ? static_cast<T>(-*clip) : -inf, hi = clip ? static_cast<T>(*clip) : inf;
    const T fb = static_cast<T>(forget_bias);
    const int nt = step_threads(Dd, U, Pn);
    // Row-major weights (cs == 1) are split by rows: each thread reads whole rows,
    // one contiguous block, and writes its partial sums (rows 4u floats apart, a
    // column split would read 2 KB of every 4 KB row: L1 set conflicts cost a
    // third of the product), summed in a fixed order in the pointwise pass.
    // Transposed weights (each output's weights contiguous) are split by columns.
    const bool rowsplit = nt > 1 && Wm.cs == 1 && Rm.cs == 1;
    const int parts = rowsplit ? nt : 1;
    // One thread, W and R consecutive rows of one row-major matrix (TF1's [x; h]
    // kernel): one product over [x, h].
    const bool joint =
        !rowsplit && Wm.cs == 1 && Rm.cs == 1 && Wm.rs == Rm.rs && Rm.p == Wm.p + Dd * Wm.rs;
    Tensor xh_t;
    const T* xh = nullptr;
    if (joint) {
      xh_t = at::empty({B, Dd + Pn}, opts);
      T* d = xh_t.data_ptr<T>();
      for (int64_t r = 0; r < B; ++r) {
        std::memcpy(d + r * (Dd + Pn), xp + r * Dd, sizeof(T) * Dd);
        std::memcpy(d + r * (Dd + Pn) + Dd, hp + r * Pn, sizeof(T) * Pn);
      }
      xh = d;
    }
    Tensor z_t = at::empty({B, 4 * U}, opts);
    Tensor zs_t = at::empty({parts, B, 4 * U}, opts);  // x W + h R, stored column order
    Tensor c_out = at::empty({B, U}, opts);
    Tensor h_out = at::empty({B, Pn}, opts);
    Tensor cpre_t = at::empty({B, U}, opts);
    Tensor hu_t = P ? at::empty({B, U}, opts) : h_out;
    // What backward needs (save): z holds the pre-activations after the pass,
    // cpre the pre-clip cell; rpre the pre-clip output when it is clipped.
    Tensor rpre_t = save && pclip ? at::empty({B, Pn}, opts) : Tensor();
    T* rpre = rpre_t.defined() ? rpre_t.data_ptr<T>() : nullptr;
    T* z = z_t.data_ptr<T>();
    T* zs = zs_t.data_ptr<T>();
    T* co = c_out.data_ptr<T>();
    T* ho = h_out.data_ptr<T>();
    T* cpre = cpre_t.data_ptr<T>();
    T* hu = hu_t.data_ptr<T>();
    const int64_t cc = chunk_of(4 * U, nt), rc = (Dd + Pn + nt - 1) / nt;
    auto body = [&](const int t) {
      // The products: thread t computes a contiguous range of the stored rows or
      // columns (weights a thread keeps in its cache from step to step, whatever
      // the gate order) ...
      const int64_t c0 = std::min<int64_t>(4 * U, t * cc), c1 = std::min<int64_t>(4 * U, c0 + cc);
      if (rowsplit) {
        const int64_t r0 = std::min<int64_t>(Dd + Pn, t * rc), r1 = std::min<int64_t>(Dd + Pn, r0 + rc);
        T* zt = zs + t * B * 4 * U;
        T beta = T(0);
        if (r0 < Dd) {
          const int64_t e = std::min<int64_t>(r1, Dd);
          gemm<T>(false, false, B, 4 * U, e - r0, xp + r0, Dd, Wm.at(r0, 0), Wm.rs, beta, zt,
                  4 * U);
          beta = T(1);
        }
        if (r1 > Dd) {
          const int64_t a = std::max<int64_t>(r0, Dd) - Dd, e = r1 - Dd;
          gemm<T>(false, false, B, 4 * U, e - a, hp + a, Pn, Rm.at(a, 0), Rm.rs, beta, zt,
                  4 * U);
          beta = T(1);
        }
        if (beta == T(0))
          for (int64_t e = 0; e < B * 4 * U; ++e) zt[e] = T(0);
      } else if (c1 > c0) {
        if (joint) {
          gemm<T>(false, false, B, c1 - c0, Dd + Pn, xh, Dd + Pn, Wm.at(0, c0), Wm.rs, T(0),
                  zs + c0, 4 * U);
        } else {
          gemm<T>(false, Wm.trans(), B, c1 - c0, Dd, xp, Dd, Wm.at(0, c0), Wm.ld(), T(0),
                  zs + c0, 4 * U);
          gemm<T>(false, Rm.trans(), B, c1 - c0, Pn, hp, Pn, Rm.at(0, c0), Rm.ld(), T(1),
                  zs + c0, 4 * U);
        }
      }
      barrier(nt);
      // ... then the pointwise pass for its units, canonical gate k read from
      // stored block gates[k], the bias (and the forget bias) added first.
      const Slice sl = slice_of(t, nt, U, Pn);
      const int64_t nu = sl.u1 - sl.u0;
      if (nu > 0) {
        for (int64_t r = 0; r < B; ++r)
          for (int64_t k = 0; k < 4; ++k) {
            const int64_t col = k * U + sl.u0, scol = gates[k] * U + sl.u0;
            T* zr = z + r * 4 * U + col;
            const T* sr = zs + r * 4 * U + scol;
            const T add = k == 1 ? fb : T(0);
            if (bp && bs == 1) {
              const T* bq = bp + scol;
              for (int64_t j = 0; j < nu; ++j) zr[j] = (bq[j] + add) + sr[j];
            } else if (bp) {
              for (int64_t j = 0; j < nu; ++j) zr[j] = (bp[(scol + j) * bs] + add) + sr[j];
            } else
              for (int64_t j = 0; j < nu; ++j) zr[j] = add + sr[j];
            for (int q = 1; q < parts; ++q) {  // the other threads' partial sums, in order
              const T* sq = sr + q * B * 4 * U;
              for (int64_t j = 0; j < nu; ++j) zr[j] = zr[j] + sq[j];
            }
          }
        for (int64_t r = 0; r < B; ++r) {
          const int64_t o4 = r * 4 * U + sl.u0, o1 = r * U + sl.u0;
          // without a projection hu is h_out (Pn == U): o * act(c') lands in place
          T* hr = P ? hu + o1 : hu + r * Pn + sl.u0;
          if (peep)
            row_fwd<T, A, RA, true>(nu, U, act, ract, lo, hi, z + o4, cp + o1, co + o1, cpre + o1,
                                    hr, peep + sl.u0);
          else
            row_fwd<T, A, RA, false>(nu, U, act, ract, lo, hi, z + o4, cp + o1, co + o1,
                                     cpre + o1, hr, peep);
        }
      }
      int64_t q0 = sl.u0, q1 = sl.u1;
      if (P) {
        barrier(nt);
        q0 = sl.p0;
        q1 = sl.p1;
        if (q1 > q0) gemm<T>(false, false, B, q1 - q0, U, hu, U, P + q0, Pn, T(0), ho + q0, Pn);
      }
      if (pclip) {
        const T pc = static_cast<T>(*pclip);
        if (rpre)
          for (int64_t r = 0; r < B; ++r)
            std::memcpy(rpre + r * Pn + q0, ho + r * Pn + q0, sizeof(T) * (q1 - q0));
        for (int64_t r = 0; r < B; ++r)
          for (int64_t j = q0; j < q1; ++j) ho[r * Pn + j] = clampv(ho[r * Pn + j], -pc, pc);
      }
    };
    run_threads(nt, body);
    if (save) return {h_out, c_out, z_t, cpre_t, rpre_t.defined() ? rpre_t : at::empty({0}, opts)};
    return {h_out, c_out};
  }
};

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

std::vector<Tensor> lstmcompat::fused_step(const Tensor& x, const Tensor& W, const Tensor& R,
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

TORCH_LIBRARY(lstmcompat_fused, m) {
  m.def("forward(Tensor(a!) Z, Tensor R, Tensor h0, Tensor c0, Tensor? dmh, Tensor? peep, "
        "Tensor? P, Tensor? mask, int act, int ract, float? cell_clip, float? proj_clip, "
        "bool carry, bool save, Tensor? bias=None) -> Tensor[]");
  m.def("backward(Tensor Z, Tensor C, Tensor Cpre, Tensor Rpre, Tensor c0, Tensor R, "
        "Tensor? dmh, Tensor? peep, Tensor? P, Tensor? mask, Tensor dout, Tensor dhT, "
        "Tensor dcT, int act, int ract, float? cell_clip, float? proj_clip, bool carry) "
        "-> Tensor[]");
  m.def("step(Tensor x, Tensor W, Tensor R, Tensor? b, float forget_bias, Tensor h, Tensor c, "
        "Tensor? peep, Tensor? P, int act, int ract, float? cell_clip, float? proj_clip, "
        "int[]? gates=None, bool save=False) -> Tensor[]");
  m.def("features() -> str[]", &features);
}

TORCH_LIBRARY_IMPL(lstmcompat_fused, CPU, m) {
  m.impl("forward", &fused_forward);
  m.impl("backward", &fused_backward);
  m.impl("step", &step_op);
}
