// One inference step (streaming): Step, run by the `step` op and the streamer.
// Part of the unity build of ops.cpp (see there).
#pragma once

#include <ATen/ATen.h>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>
#include "activations.h"
#include "config.h"
#include "gemm.h"
#include "matrix.h"
#include "threads.h"

namespace lstmcompat {
namespace {

using at::Tensor;

// One inference step (streaming): z = b + x W + h R, then the pointwise pass,
// h' and c' written straight into fresh tensors. Threads own unit slices as in
// the sequence loop, so each keeps its columns of W and R in its own L2 cache
// across calls; without a projection no barrier is needed at all.
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

}  // namespace
}  // namespace lstmcompat
