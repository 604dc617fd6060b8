// A bfloat16 GEMM with a float result on AVX-512 BF16 (vdpbf16ps), for CPUs that
// have those instructions but no AMX (AMD Zen 4 and later, Intel Cooper Lake).
// There MKL's gemm_bf16bf16f32 is no faster than its float sgemm (measured on a
// Zen 4: 0.8-1.4x), while vdpbf16ps does twice the multiply-adds of a float FMA.
// Part of the unity build of ops.cpp (see there); included by gemm.h, whose bf16_bits
// it uses.
//
// C (M x N, float) = A (M x K) op(B) (K x N), bfloat16 operands: A as rows of
// bfloat16 bits or packed, op(B) packed (PackedB16, once for all the steps of a time
// loop). Each product of two bfloat16 values is exact in float and the sums are float
// (vdpbf16ps adds a pair's two products one after the other, rounding each sum to
// nearest even; bfloat16 subnormals, below 1.2e-38, read as zero): the same numbers
// as a float GEMM of the rounded operands up to the order of the sums, which is what
// the low-precision products promise.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <cstdint>
#include <cstring>

#if defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__AVX512BW__) && \
    !defined(__AMX_BF16__)
// With AMX (Sapphire Rapids and later) MKL's bfloat16 GEMM is faster: it is kept there.
#define LSTMCOMPAT_DPBF16 1
#include <immintrin.h>
#endif

namespace lstmcompat {
namespace {

using at::Tensor;

#ifdef LSTMCOMPAT_DPBF16

// A matrix packed in pairs along k (the "VNNI" layout the instruction reads), in
// panels of `pw` columns: (k, n) at [(n / pw) * KP * 2 pw + (k / 2) * 2 pw + (n % pw) * 2
// + k % 2] (KP = ceil(K / 2); an odd K's last pair and the last panel's columns past N
// are zeros), so that a tile's operand is one contiguous stream. As dp_gemm's right
// operand it is op(B) (K x N, panels of kDpCols); as its left operand, the transpose
// of A (K x M, panels of kDpRowBlock: a product A^T B whose A is stored K x M, such
// as the weight gradients x^T dz, without a transposed copy).
struct PackedB16 {
  Tensor buf;  // int16
  int64_t K = 0, N = 0, pw = 1;
  int64_t panel() const { return (K + 1) / 2 * 2 * pw; }  // elements per panel
  const uint16_t* data() const { return reinterpret_cast<const uint16_t*>(buf.data_ptr()); }
  // Where the pair (k, k + 1) of column n is (k even), from data().
  int64_t offset(int64_t k, int64_t n) const {
    return (n / pw) * panel() + (k / 2) * 2 * pw + (n % pw) * 2;
  }
  const uint16_t* at(int64_t k, int64_t n) const { return data() + offset(k, n); }
};

constexpr int kDpRows = 6;       // rows of a tile (6 x 4 accumulators + 4 B vectors)
constexpr int kDpCols = 64;      // columns of a tile: B's panel width
constexpr int64_t kDpK = 1024;   // k per pass (even): a tile's B stream stays in L2
constexpr int kDpRowBlock = 96;  // rows per parallel block: A^T's panel width

// 16 floats' bfloat16 bits (bf16_bits, vectorised).
__attribute__((always_inline)) inline __m256i bf16_bits16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i r = _mm512_srli_epi32(
      _mm512_add_epi32(u, _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(u, 16), one),
                                           _mm512_set1_epi32(0x7FFF))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)),
                                                _mm512_set1_epi32(0x7F800000));
  return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7FC0)));
}

// 32 consecutive elements of a row as bfloat16 bits.
__attribute__((always_inline)) inline __m512i load32_bf16(const uint16_t* p) {
  return _mm512_loadu_si512(p);
}
__attribute__((always_inline)) inline __m512i load32_bf16(const float* p) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(bf16_bits16(_mm512_loadu_ps(p))),
                            bf16_bits16(_mm512_loadu_ps(p + 16)), 1);
}
inline uint16_t bits_of(uint16_t v) { return v; }
inline uint16_t bits_of(float v) { return bf16_bits(v); }

// Pack the K x N matrix p (element (k, n) at p[k * rs + n * cs]; float or bfloat16
// bits) in panels of pw columns (a multiple of 32), on torch's threads.
template <typename S>
PackedB16 pack_b16_strided(int64_t K, int64_t N, const S* p, int64_t rs, int64_t cs,
                           int64_t pw = kDpCols) {
  PackedB16 pb;
  pb.K = K;
  pb.N = N;
  pb.pw = pw;
  const int64_t KP = (K + 1) / 2, panels = (N + pw - 1) / pw, Nw = panels * pw;
  pb.buf = at::empty({std::max<int64_t>(panels * pb.panel(), 1)},
                     at::TensorOptions().dtype(at::kShort));
  uint16_t* d = reinterpret_cast<uint16_t*>(pb.buf.data_ptr());
  const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40,
                                      8, 39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i hi = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56,
                                      24, 55, 23, 54, 22, 53, 21, 52, 20, 51, 19, 50, 18, 49, 17,
                                      48, 16);
  at::parallel_for(0, KP, 16, [&](int64_t k0, int64_t k1) {
    for (int64_t kp = k0; kp < k1; ++kp) {
      const int64_t k = 2 * kp;
      auto dst = [&](int64_t n) { return d + pb.offset(k, n); };
      const bool pair = k + 1 < K;
      int64_t n = 0;
      if (cs == 1 && pair && pw % 32 == 0) {
        const S* r0 = p + k * rs;
        const S* r1 = r0 + rs;
        for (; n + 32 <= N; n += 32) {  // 32 columns, within one panel
          const __m512i a = load32_bf16(r0 + n), b = load32_bf16(r1 + n);
          uint16_t* o = dst(n);
          _mm512_storeu_si512(o, _mm512_permutex2var_epi16(a, lo, b));
          _mm512_storeu_si512(o + 32, _mm512_permutex2var_epi16(a, hi, b));
        }
      }
      for (; n < N; ++n) {
        uint16_t* o = dst(n);
        o[0] = bits_of(p[k * rs + n * cs]);
        o[1] = pair ? bits_of(p[(k + 1) * rs + n * cs]) : uint16_t(0);
      }
      for (; n < Nw; ++n) {
        uint16_t* o = dst(n);
        o[0] = o[1] = 0;
      }
    }
  });
  return pb;
}

// One MR x (16 NV) tile of C over k in [0, K): C (+)= A B. The pair (k, k + 1) of
// A's row i is the 32 bits at A + i * ars + (k / 2) * aks (row-major A: ars = lda,
// aks = 2; a PackedB16 of A^T: ars = 2, aks = 2 pw); `apad`: A's pairs are padded
// (an odd K's last pair may be read whole). The last vector of columns stores only
// the lanes of `last` (the columns past N are not written).
template <int MR, int NV>
__attribute__((always_inline)) inline void dp_tile(int64_t K, const uint16_t* A, int64_t ars,
                                                   int64_t aks, bool apad, const uint16_t* Bp,
                                                   int64_t N2, float* C, int64_t ldc, bool acc,
                                                   __mmask16 last) {
  __m512 c[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) c[i][j] = _mm512_setzero_ps();
  const int64_t KP = apad ? (K + 1) / 2 : K / 2;
  for (int64_t kp = 0; kp < KP; ++kp) {
    const uint16_t* b = Bp + kp * N2;
    __m512bh bv[NV];
    for (int j = 0; j < NV; ++j) bv[j] = (__m512bh)_mm512_loadu_si512(b + 32 * j);
    const uint16_t* a = A + kp * aks;
    for (int i = 0; i < MR; ++i) {
      uint32_t pair;
      std::memcpy(&pair, a + i * ars, 4);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
      for (int j = 0; j < NV; ++j) c[i][j] = _mm512_dpbf16_ps(c[i][j], av, bv[j]);
    }
  }
  if ((K & 1) && !apad) {  // the last k alone: its pair's second half is zero (B's too)
    const uint16_t* b = Bp + KP * N2;
    __m512bh bv[NV];
    for (int j = 0; j < NV; ++j) bv[j] = (__m512bh)_mm512_loadu_si512(b + 32 * j);
    for (int i = 0; i < MR; ++i) {
      const uint32_t pair = A[i * ars + KP * aks];
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
      for (int j = 0; j < NV; ++j) c[i][j] = _mm512_dpbf16_ps(c[i][j], av, bv[j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) {
      float* cp = C + i * ldc + 16 * j;
      const __mmask16 m = j == NV - 1 ? last : static_cast<__mmask16>(0xFFFF);
      __m512 v = c[i][j];
      if (acc) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, cp), v);
      _mm512_mask_storeu_ps(cp, m, v);
    }
}

template <int MR>
inline void dp_tile_nv(int nv, int64_t K, const uint16_t* A, int64_t ars, int64_t aks, bool apad,
                       const uint16_t* Bp, int64_t N2, float* C, int64_t ldc, bool acc,
                       __mmask16 last) {
  switch (nv) {
    case 4: return dp_tile<MR, 4>(K, A, ars, aks, apad, Bp, N2, C, ldc, acc, last);
    case 3: return dp_tile<MR, 3>(K, A, ars, aks, apad, Bp, N2, C, ldc, acc, last);
    case 2: return dp_tile<MR, 2>(K, A, ars, aks, apad, Bp, N2, C, ldc, acc, last);
    default: return dp_tile<MR, 1>(K, A, ars, aks, apad, Bp, N2, C, ldc, acc, last);
  }
}

// dp_gemm's left operand: row-major bfloat16 bits (lda), or packed (the PackedB16 of
// A^T, panels of kDpRowBlock rows).
struct LeftOperand16 {
  const uint16_t* p;
  int64_t lda;             // rows
  const PackedB16* at_;    // packed
  // The pair (k, k + 1) of row r (k even; r % kDpRows == 0 for packed) and the
  // distances to the next row's and the next pair's.
  const uint16_t* tile(int64_t r, int64_t k) const { return at_ ? at_->at(k, r) : p + r * lda + k; }
  int64_t rs() const { return at_ ? 2 : lda; }
  int64_t ks() const { return at_ ? 2 * at_->pw : 2; }
  bool padded() const { return at_ != nullptr; }
  static LeftOperand16 rows(const uint16_t* a, int64_t lda) { return {a, lda, nullptr}; }
  static LeftOperand16 packed(const PackedB16& t) { return {nullptr, 0, &t}; }
};

// C[r0:r1, n0:n1] (+)= A[r0:r1] op(B)[:, n0:n1] (n0 a multiple of 16), single-threaded.
inline void dp_block(const LeftOperand16& A, const PackedB16& B, float* C, int64_t ldc,
                     int64_t r0, int64_t r1, int64_t n0, int64_t n1, bool acc) {
  const int64_t K = B.K, N2 = 2 * B.pw;
  int64_t k0 = 0;
  do {
    const int64_t kc = std::min<int64_t>(kDpK, K - k0);
    const bool add = acc || k0 > 0;
    for (int64_t n = n0; n < n1; n += kDpCols) {
      const int64_t w = std::min<int64_t>(kDpCols, n1 - n);
      const int nv = static_cast<int>((w + 15) / 16);
      const int rem = static_cast<int>(w - 16 * (nv - 1));
      const __mmask16 last = static_cast<__mmask16>((1u << rem) - 1u);
      const uint16_t* bp = B.at(k0, n);
      const int64_t ars = A.rs(), aks = A.ks();
      const bool apad = A.padded();
      for (int64_t r = r0; r < r1; r += kDpRows) {
        const int mr = static_cast<int>(std::min<int64_t>(kDpRows, r1 - r));
        const uint16_t* a = A.tile(r, k0);
        float* c = C + r * ldc + n;
        switch (mr) {
          case 6: dp_tile_nv<6>(nv, kc, a, ars, aks, apad, bp, N2, c, ldc, add, last); break;
          case 5: dp_tile_nv<5>(nv, kc, a, ars, aks, apad, bp, N2, c, ldc, add, last); break;
          case 4: dp_tile_nv<4>(nv, kc, a, ars, aks, apad, bp, N2, c, ldc, add, last); break;
          case 3: dp_tile_nv<3>(nv, kc, a, ars, aks, apad, bp, N2, c, ldc, add, last); break;
          case 2: dp_tile_nv<2>(nv, kc, a, ars, aks, apad, bp, N2, c, ldc, add, last); break;
          default: dp_tile_nv<1>(nv, kc, a, ars, aks, apad, bp, N2, c, ldc, add, last); break;
        }
      }
    }
    k0 += kDpK;
  } while (k0 < K);
}

// C (M x N, leading dimension ldc) = A B + beta C, single-threaded (the time loops
// call it from their own threads).
inline void dp_gemm(int64_t M, const LeftOperand16& A, const PackedB16& B, float beta, float* C,
                    int64_t ldc) {
  const int64_t N = B.N;
  if (M == 0 || N == 0) return;
  if (beta != 0.0f && beta != 1.0f)
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < N; ++j) C[r * ldc + j] *= beta;
  dp_block(A, B, C, ldc, 0, M, 0, N, beta != 0.0f);
}

// C = A B on torch's threads: blocks of rows x column tiles, shared out.
inline void dp_gemm_parallel(int64_t M, const LeftOperand16& A, const PackedB16& B, float* C,
                             int64_t ldc) {
  const int64_t N = B.N;
  if (M == 0 || N == 0) return;
  const int64_t rows = kDpRowBlock;
  const int64_t mb = (M + rows - 1) / rows, nb = (N + kDpCols - 1) / kDpCols;
  at::parallel_for(0, mb * nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t i = blk / nb, j = blk % nb;
      dp_block(A, B, C, ldc, i * rows, std::min(M, (i + 1) * rows), j * kDpCols,
               std::min(N, (j + 1) * kDpCols), false);
    }
  });
}

#endif  // LSTMCOMPAT_DPBF16

}  // namespace
}  // namespace lstmcompat
