// The forward time loop (forward_impl) and its pointwise pass (row_fwd).
// Part of the unity build of ops.cpp (see there).
#pragma once

#include <ATen/ATen.h>
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

// Pointwise part of one step for one batch row and the units [0, n) of the
// pointers (pre-offset to the thread's slice; gate blocks are U apart): reads z
// and c_prev, writes the pre-activations back into z (peepholes added), the
// pre-clip cell into cpr, the new cell (post-clip) into cn and o * act(c') into
// hr. Branch-free so that gcc vectorises it (no clip: bounds are +-inf).
template <typename T, int A, int RA, bool PEEP, bool ADD = false, bool BIAS = false,
          bool ZIN = true>
void row_fwd(int64_t n, int64_t U, int a, int ra, T lo, T hi, T* __restrict zr,
             const T* __restrict cp, T* __restrict cn, T* __restrict cpr, T* __restrict hr,
             const T* __restrict peep, const T* __restrict zt = nullptr,
             const T* __restrict zb = nullptr) {
  // With ADD, zt holds this step's recurrent term for the n units (gate blocks
  // n apart) and is added to zr first (with BIAS after the bias zb, gate blocks U
  // apart); the sums are stored back into zr. Without ZIN zr holds nothing yet (the
  // loop's product includes the input's): zt (+ the bias) is the pre-activation.
  for (int64_t j = 0; j < n; ++j) {
    T zi = ZIN ? zr[j] : T(0), zf = ZIN ? zr[U + j] : T(0), zg = ZIN ? zr[2 * U + j] : T(0);
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
    T zo = ZIN ? zr[3 * U + j] : T(0);
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
                                 const c10::optional<Tensor>& bias_t,
                                 const c10::optional<Tensor>& x_t = c10::nullopt,
                                 const c10::optional<Tensor>& W_t = c10::nullopt) {
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
  const int lowp = cf.lowp;
  const bool pack_r = Tn >= 4 || lowp != 0;  // lowp: the packed copy is rounded
  // Low-precision products with a bfloat16 GEMM: the h state is also kept as
  // bfloat16 (a ring of two), each thread converting its slice once.
  const bool share16 = bf16_gemm<T>(lowp) && !dmh;
  // With x and W (the caller's choice, with share16 only): the input product in the
  // loop too, one product [x_s, h] [W; R] per step into zt (Z is only written: the
  // pre-activations, (x W + h R) + b), and the ring holds [x_s, h] as bfloat16 rows.
  const bool input = x_t.has_value() && x_t->defined();
  const int64_t Dn = input ? x_t->size(2) : 0, Kc = Dn + Pn;
  const T* xp = input ? x_t->data_ptr<T>() : nullptr;
  const Mat<T> Wm = input ? mat_of<T>(*W_t) : Mat<T>{nullptr, 0, 0};
  // Saving, the ring keeps every step's row block ([x_s, h_{s-1}]: the weight
  // gradients' left operand, returned as XH).
  const bool keep16 = input && save;
  const int64_t slots = keep16 ? std::max<int64_t>(Tn, 1) : 2;
  Tensor hb_t = share16 ? at::empty({slots, B, Kc}, at::TensorOptions().dtype(at::kBFloat16))
                        : empty;
  uint16_t* hb = share16 ? reinterpret_cast<uint16_t*>(hb_t.data_ptr()) : nullptr;
  Tensor Rt_t = pack_r ? at::empty({nt, Kc, 4 * cmax}, opts) : empty;
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
    const T* wr = nullptr;  // the packed [W; R] (with input; else R), when packed
    if (pack_r) {
      T* wrt = Rt_t.data_ptr<T>() + t * Kc * 4 * cmax;
      if (input)  // W's rows first (this thread's columns of each gate block)
        for (int64_t d = 0; d < Dn; ++d)
          for (int64_t k = 0; k < 4; ++k)
            for (int64_t j = 0; j < nu; ++j)
              wrt[d * 4 * nu + k * nu + j] = *Wm.at(d, k * U + sl.u0 + j);
      T* rt = wrt + Dn * 4 * nu;
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
      if (lowp != 0)  // the operand's values rounded (the packed copy is this thread's)
        for (int64_t e = 0; e < Kc * 4 * nu; ++e) wrt[e] = round_lowp<T>(lowp, wrt[e]);
      wr = wrt;
      rk = Mat<T>{rt, 4 * nu, 1};
      kstep = nu;
      c0 = 0;
    }
    std::optional<RightOperand<T>> rop;  // all four gates' columns in one product
    if (pack_r && (!dmh || G == 1)) rop.emplace(B, 4 * nu, Kc, false, wr, 4 * nu, lowp);
    // this thread's rows of each x_s in the ring
    const int64_t xr0 = t * B / nt, xr1 = (t + 1) * B / nt;
    auto put_x = [&](int64_t s) {
      for (int64_t b = xr0; b < xr1; ++b)
        bf16_rows(1, Dn, reinterpret_cast<const float*>(xp) + (s * B + b) * Dn, Dn,
                  hb + (s % slots) * B * Kc + b * Kc, Dn);
    };
    if (share16) {
      for (int64_t b = 0; b < B; ++b)
        bf16_rows(1, nq, reinterpret_cast<const float*>(h0p) + b * Pn + q0, nq,
                  hb + b * Kc + Dn + q0, nq);
      if (input && Tn > 0) put_x(0);
      barrier(nt);
    }
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
          if (share16)
            rop->mul_bf16(hb + (s % slots) * B * Kc, Kc, T(0), zt, 4 * nu);
          else if (rop)
            rop->mul(hk, Pn, T(0), zt, 4 * nu);
          else
            for (int64_t k = 0; k < 4; ++k)
              gemm<T>(false, rk.trans(), B, nu, Pn, hk, Pn, rk.at(0, k * kstep + c0), rk.ld(),
                      T(0), zt + k * nu, 4 * nu);
        } else {
          for (int64_t k = 0; k < 4; ++k) {
            const T* mk = dmh + k * B * Pn;
            for (int64_t e = 0; e < B * Pn; ++e) hin[e] = round_lowp<T>(lowp, h_prev[e] * mk[e]);
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
          // (with input, Z holds nothing yet: ZIN false)
#define LSTMCOMPAT_ROW_FWD(PEEP, BIAS)                                                       \
  (input ? row_fwd<T, A, RA, PEEP, true, BIAS, false>                                        \
         : row_fwd<T, A, RA, PEEP, true, BIAS, true>)(nu, U, cf.act, cf.ract, lo, hi, zr,    \
                                                      c_prev + o1, c_next + o1, cpre + o1,   \
                                                      hu + o1, pe, ztb, zb)
          if (peep && bias)
            LSTMCOMPAT_ROW_FWD(true, true);
          else if (peep)
            LSTMCOMPAT_ROW_FWD(true, false);
          else if (bias)
            LSTMCOMPAT_ROW_FWD(false, true);
          else
            LSTMCOMPAT_ROW_FWD(false, false);
#undef LSTMCOMPAT_ROW_FWD
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
        if (share16 && !(keep16 && s + 1 == Tn))  // (kept: no slot after the last)
          bf16_rows(1, nq, reinterpret_cast<const float*>(hr), nq,
                    hb + ((s + 1) % slots) * B * Kc + b * Kc + Dn + q0, nq);
      }
      if (input && s + 1 < Tn) put_x(s + 1);
      barrier(nt);  // the next step's GEMM reads all of h_next
    }
  };
  run_threads(nt, body);
  const int64_t last = Tn - 1;
  Tensor hT = Tn == 0 ? h0.clone() : (hs_ring ? Hs[last % 2] : Hs[last]).clone();
  Tensor cT = Tn == 0 ? c0.clone() : (c_ring ? C[last % 2] : C[last]).clone();
  if (!save) return {outputs, hT, cT, empty, empty, empty, empty};
  if (keep16) return {outputs, hT, cT, C, cf.has_clip ? Cpre : empty, mask ? Hs : empty, Rpre,
                      hb_t};
  return {outputs, hT, cT, C, cf.has_clip ? Cpre : empty, mask ? Hs : empty, Rpre};
}

}  // namespace
}  // namespace lstmcompat
