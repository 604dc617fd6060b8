// Threads: how a call is split over OpenMP threads (unit slices), the barrier,
// and the parallel region.
// Part of the unity build of ops.cpp (see there).
#pragma once

#include <ATen/Parallel.h>
#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace lstmcompat {
namespace {

using at::Tensor;

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

}  // namespace
}  // namespace lstmcompat
