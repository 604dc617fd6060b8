// GEMM for the time loops: BLAS ?gemm_/?gemv_ when libtorch exports them (else
// at::mm), and MKL's packed GEMM for a right operand reused over many steps.
// Part of the unity build of ops.cpp (see there).
#pragma once

#include <ATen/ATen.h>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "activations.h"

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

#ifdef LSTMCOMPAT_BF16_GEMM
// MKL's GEMM of bfloat16 operands (as uint16 bits) with a float result.
extern "C" void cblas_gemm_bf16bf16f32(int layout, int transa, int transb, int m, int n, int k,
                                       float alpha, const uint16_t* a, int lda,
                                       const uint16_t* b, int ldb, float beta, float* c,
                                       int ldc);
#endif

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

namespace lstmcompat {
namespace {

using at::Tensor;

// ----------------------------------------------------- low-precision operands
// lowp (Config::lowp, CellSpec.matmul_dtype): 1 bfloat16, 2 float16. A product's
// operands are rounded to that type (round to nearest even, as torch's casts) and
// multiplied in float: the products of two such values are exact in float, so a
// float GEMM of rounded operands and MKL's bfloat16 GEMM give the same numbers up
// to the order of the sums.
// The bfloat16 bits of v, rounded to nearest even, NaN kept quiet: what
// c10::BFloat16(v) (torch's casts) gives, written without a branch so that the
// conversion loops vectorise.
LSTMCOMPAT_INLINE uint16_t bf16_bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  const uint32_t rounded = (u + (((u >> 16) & 1u) + 0x7FFFu)) >> 16;
  return static_cast<uint16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC0u : rounded);
}

template <typename T>
inline T round_lowp(int lowp, T v) {
  if constexpr (std::is_same_v<T, float>) {
    if (lowp == 1) {
      const uint32_t u = static_cast<uint32_t>(bf16_bits(v)) << 16;
      float r;
      std::memcpy(&r, &u, 4);
      return r;
    }
    if (lowp == 2) return static_cast<float>(c10::Half(v));
  }
  return v;
}

// dst (rows x cols, leading dimension ldd) = src (leading dimension lds) rounded.
template <typename T>
void round_rows(int lowp, int64_t rows, int64_t cols, const T* src, int64_t lds, T* dst,
                int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) dst[r * ldd + j] = round_lowp<T>(lowp, src[r * lds + j]);
}

// dst = the bfloat16 bits of src (rows x cols).
inline void bf16_rows(int64_t rows, int64_t cols, const float* src, int64_t lds, uint16_t* dst,
                      int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) dst[r * ldd + j] = bf16_bits(src[r * lds + j]);
}

}  // namespace
}  // namespace lstmcompat

#include "dpbf16.h"

namespace lstmcompat {
namespace {

// A contiguous copy of the matrix t with its values rounded.
template <typename T>
Tensor rounded_copy(int lowp, const Tensor& t) {
  Tensor r = at::empty({t.size(0), t.size(1)}, t.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t rows = t.size(0), cols = t.size(1), rs = t.stride(0), cs = t.stride(1);
  const T* src = t.data_ptr<T>();
  T* dst = r.data_ptr<T>();
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[i * cols + j] = round_lowp<T>(lowp, src[i * rs + j * cs]);
  return r;
}

// Whether lowp products run as bfloat16 GEMMs in this build (AVX-512 BF16's, see
// dpbf16.h, or MKL's; else as float GEMMs of rounded operands).
template <typename T>
constexpr bool bf16_gemm(int lowp) {
#if defined(LSTMCOMPAT_BF16_GEMM) || defined(LSTMCOMPAT_DPBF16)
  return std::is_same_v<T, float> && lowp == 1;
#else
  return false;
#endif
}

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
//
// With lowp the left operand of each product is rounded first (op(B) must hold
// rounded values already): with a bfloat16 GEMM, op(B) is kept as bfloat16
// (converted once; packed for dp_gemm, see dpbf16.h) and A converted on each
// product (mul), or given converted
// (mul_bf16, when the caller shares one conversion among threads).
template <typename T>
class RightOperand {
 public:
  RightOperand(int64_t M, int64_t N, int64_t K, bool tb, const T* B, int64_t ldb, int lowp = 0)
      : M_(M), N_(N), K_(K), tb_(tb), B_(B), ldb_(ldb), lowp_(lowp) {
    if (lowp_ != 0 && M > 0 && N > 0 && K > 0) {
      if (bf16_gemm<T>(lowp_)) {
        a16_ = at::empty({M * K}, at::TensorOptions().dtype(at::kShort));
#ifdef LSTMCOMPAT_DPBF16
        if constexpr (std::is_same_v<T, float>) {
          dp_ = pack_b16_strided<T>(K, N, B, tb ? 1 : ldb, tb ? ldb : 1);
          b16_ = dp_.buf;
          return;
        }
#endif
        b16_ = at::empty({K * N}, at::TensorOptions().dtype(at::kShort));
        uint16_t* b = reinterpret_cast<uint16_t*>(b16_.data_ptr());
        for (int64_t k = 0; k < K; ++k)
          for (int64_t n = 0; n < N; ++n)
            b[k * N + n] = bf16_bits(static_cast<float>(tb ? B[n * ldb + k] : B[k * ldb + n]));
        return;
      }
      // float GEMMs of rounded operands: op(B) rounded once (row-major K x N), A on
      // each product
      auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
      scratch_ = at::empty({M * K}, opts);
      bround_ = at::empty({K * N}, opts);
      T* b = bround_.data_ptr<T>();
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
          b[k * N + n] = round_lowp<T>(lowp, tb ? B[n * ldb + k] : B[k * ldb + n]);
      B_ = b;
      B = b;
      tb_ = tb = false;
      ldb_ = ldb = N;
    }
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
  // True when products run as bfloat16 GEMMs (mul_bf16 may be called).
  bool bf16() const { return b16_.defined(); }
  void mul_bf16(const uint16_t* A, int64_t lda, T beta, T* C, int64_t ldc) const {
#ifdef LSTMCOMPAT_DPBF16
    if constexpr (std::is_same_v<T, float>) dp_gemm(M_, LeftOperand16::rows(A, lda), dp_, beta, C, ldc);
#elif defined(LSTMCOMPAT_BF16_GEMM)
    if constexpr (std::is_same_v<T, float>) {
      cblas_gemm_bf16bf16f32(kRowMajor, kNoTrans, kNoTrans, M_, N_, K_, 1.0f, A, lda,
                             reinterpret_cast<const uint16_t*>(b16_.data_ptr()), N_, beta, C,
                             ldc);
    }
#endif
  }
  void mul(const T* A, int64_t lda, T beta, T* C, int64_t ldc) const {
    if (lowp_ != 0 && M_ > 0 && N_ > 0 && K_ > 0) {
      if constexpr (std::is_same_v<T, float>) {
        if (bf16()) {
          uint16_t* a = reinterpret_cast<uint16_t*>(a16_.data_ptr());
          bf16_rows(M_, K_, A, lda, a, K_);
          mul_bf16(a, K_, beta, C, ldc);
          return;
        }
      }
      T* a = scratch_.data_ptr<T>();
      round_rows<T>(lowp_, M_, K_, A, lda, a, K_);
      A = a;
      lda = K_;
    }
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
  int lowp_;
  Tensor packed_, b16_, a16_, scratch_, bround_;
#ifdef LSTMCOMPAT_DPBF16
  PackedB16 dp_;  // op(B) for dp_gemm (b16_ is its storage)
#endif
};

}  // namespace
}  // namespace lstmcompat
