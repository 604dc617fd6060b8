// GEMM for the time loops: BLAS ?gemm_/?gemv_ when libtorch exports them (else
// at::mm), and MKL's packed GEMM for a right operand reused over many steps.
// Part of the unity build of ops.cpp (see there).
#pragma once

#include <ATen/ATen.h>
#include <cstdint>
#include <type_traits>

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

namespace lstmcompat {
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

}  // namespace
}  // namespace lstmcompat
