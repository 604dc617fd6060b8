// The backward time loop (backward_impl), its pointwise gradient (row_bwd) and the
// cell of held rows (row_cell).
// Part of the unity build of ops.cpp (see there).
#pragma once

#include <ATen/ATen.h>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>
#include "activations.h"
#include "config.h"
#include "gemm.h"
#include "matrix.h"
#include "threads.h"

namespace lstmcompat {
namespace {

using at::Tensor;

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
  const T* dmh = opt_ptr<T>(dmh_t);
  const int64_t G = dmh ? dmh_t->size(0) : 0;
  // Low-precision products (cf.lowp): per-gate masks read R itself, rounded here
  // (otherwise RightOperand rounds its operand).
  const Tensor Rl = cf.lowp != 0 && G == 4 ? rounded_copy<T>(cf.lowp, R) : R;
  const Mat<T> RT = mat_of<T>(Rl).t();  // R^T (4U x Pn), read in place
  const T* peep = opt_ptr<T>(peep_t);
  const T* P = opt_ptr<T>(P_t);
  const bool* mask = mask_t.has_value() && mask_t->defined() ? mask_t->data_ptr<bool>() : nullptr;
  const T clip = cf.has_clip ? static_cast<T>(cf.clip) : std::numeric_limits<T>::infinity();
  const T pclip = static_cast<T>(cf.pclip);
  const int a = cf.act, ra = cf.ract;
  const bool has_pclip = cf.has_pclip, carry = cf.carry, has_clip = cf.has_clip;
  const int nt = threads_for(B, U, Pn);

  // Low-precision products (see forward_impl): with a bfloat16 GEMM (share16), dz is
  // also kept as bfloat16 (returned: the weight-gradient products read it), each
  // thread converting its units once; per-gate masks round each gate block of dz
  // into a thread's scratch. lean (the engine's own calls): dz of each step only in
  // a scratch row block (its bfloat16 copy is the result) and db summed here, which
  // saves a pass over a float (T, B, 4U) tensor and the memory of it.
  const bool share16 = bf16_gemm<T>(cf.lowp) && (!dmh || G == 1);
  const bool lean = cf.lean && share16;
  Tensor dZ = at::empty({lean ? 1 : Tn, B, 4 * U}, opts);
  Tensor db_t = lean ? at::zeros({4 * U}, opts) : at::empty({0}, opts);
  T* dbp = lean ? db_t.data_ptr<T>() : nullptr;
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
  const int lowp = cf.lowp;
  Tensor dzb_t = share16 ? at::empty({Tn, B, 4 * U}, at::TensorOptions().dtype(at::kBFloat16))
                         : empty;
  uint16_t* dzb_all = share16 ? reinterpret_cast<uint16_t*>(dzb_t.data_ptr()) : nullptr;
  Tensor dzs_t = lowp != 0 && G == 4 ? at::empty({nt, B, U}, opts) : empty;

  auto body = [&](const int t) {
    const Slice sl = slice_of(t, nt, U, Pn);
    const int64_t nu = sl.u1 - sl.u0;
    const int64_t q0 = P ? sl.p0 : sl.u0, q1 = P ? sl.p1 : sl.u1, nq = q1 - q0;
    T* dh = dh0_ptr;
    T* dhp = dhp0_ptr;
    T* tmp = tmp_all ? tmp_all + t * B * Pn : nullptr;
    std::optional<RightOperand<T>> rop;  // R^T's columns of this thread's features
    if (nq > 0 && (!dmh || G == 1))
      rop.emplace(B, nq, 4 * U, RT.trans(), RT.at(0, q0), RT.ld(), lowp);
    T* dzs = lowp != 0 && G == 4 ? dzs_t.data_ptr<T>() + t * B * U : nullptr;
    for (int64_t s = Tn - 1; s >= 0; --s) {
      const T* z = Zp + s * B * 4 * U;
      const T* cn_all = Cp + s * B * U;
      const T* cprev_all = s == 0 ? c0p : Cp + (s - 1) * B * U;
      const T* dout_s = Dp + s * B * Pn;
      T* dz = dZp + (lean ? 0 : s * B * 4 * U);
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
        if (share16)
          for (int64_t k = 0; k < 4; ++k)
            bf16_rows(1, nu, reinterpret_cast<const float*>(dzr) + k * U, nu,
                      dzb_all + s * B * 4 * U + o4 + k * U, nu);
      }
      if (lean)  // db += this step's column sums of dz (the thread's units), 64 at a time
        for (int64_t k = 0; k < 4; ++k)
          for (int64_t j0 = 0; j0 < nu; j0 += 64) {
            const int64_t w = std::min<int64_t>(64, nu - j0);
            T acc[64] = {};
            for (int64_t b = 0; b < B; ++b) {
              const T* dzk = dz + b * 4 * U + k * U + sl.u0 + j0;
              if (w == 64)
                for (int j = 0; j < 64; ++j) acc[j] += dzk[j];
              else
                for (int64_t j = 0; j < w; ++j) acc[j] += dzk[j];
            }
            T* dbk = dbp + k * U + sl.u0 + j0;
            for (int64_t j = 0; j < w; ++j) dbk[j] += acc[j];
          }
      barrier(nt);  // dh_prev needs all of dz
      // dh_prev = dz R^T (times the recurrent dropout mask), this thread's features.
      if (nq > 0) {
        if (!dmh || G == 1) {
          if (share16)
            rop->mul_bf16(dzb_all + s * B * 4 * U, 4 * U, T(0), dhp + q0, Pn);
          else
            rop->mul(dz, 4 * U, T(0), dhp + q0, Pn);
          if (dmh)
            for (int64_t b = 0; b < B; ++b)
              for (int64_t j = q0; j < q1; ++j) dhp[b * Pn + j] *= dmh[b * Pn + j];
        } else {
          for (int64_t b = 0; b < B; ++b)
            for (int64_t j = q0; j < q1; ++j) dhp[b * Pn + j] = T(0);
          for (int64_t k = 0; k < 4; ++k) {
            const T* dzk = dz + k * U;
            int64_t ldz = 4 * U;
            if (dzs) {  // low-precision operands: this gate block of dz, rounded
              round_rows<T>(lowp, B, U, dzk, ldz, dzs, U);
              dzk = dzs;
              ldz = U;
            }
            gemm<T>(false, RT.trans(), B, nq, U, dzk, ldz, RT.at(k * U, q0), RT.ld(), T(0),
                    tmp + q0, Pn);
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
  return {lean ? empty : dZ, dh0, dc_t, P ? HU : empty, dRp, dpeep, dzb_t, db_t};
}

}  // namespace
}  // namespace lstmcompat
