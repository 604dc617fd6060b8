// Streaming steps from Python with the least per-call work: a `Streamer` holds
// one module's configuration (activations, clips, which of its parameters play
// which role, their gate order) and nothing derived from its weights. Each call
// reads the module's parameter dict, checks the parameters and the inputs, and
// runs the compiled step on the parameters' own storage, so that every way of
// changing a weight (in-place ops, `.data` writes, writes through NumPy views,
// `load_state_dict`, replacing the Parameter, `.to()`/`.double()`) is followed
// by the very next step. `step` returns None whenever a check fails: the caller
// then takes its general path, which gives the same numbers or the error the
// front-end documents. When autograd records, the step goes to the Python
// `grad` callable (an autograd.Function) with the checks already done. Whether a
// module streams at all is decided in Python (the engine's `choose`) before a
// Streamer is made; nothing here reads the environment.
//
// Threads: every entry point runs holding the GIL and keeps owned references to
// everything it reads from Python (no borrowed reference survives a call back
// into Python), so concurrent calls from several threads run one after another
// and a stateful step's read-compute-write of its state is never interleaved.
//
// Python binding only (pybind11, Python headers); built into the same library
// as ops.cpp when the headers are available.
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/version.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "matrix.h"
#include "ops.h"

namespace py = pybind11;
using at::Tensor;

using lstmcompat::unit_strided;

namespace {

// The Tensor behind a Python object when it is exactly a torch.Tensor (no
// subclass, so that __torch_function__ overrides keep their general path).
inline const Tensor* exact_tensor(PyObject* o) {
  return THPVariable_CheckExact(o) ? &THPVariable_Unpack(o) : nullptr;
}

// Under torch.autocast the module's general path runs (low-precision products,
// lstmcompat._engine.precision); this step computes in the weights' type.
inline bool autocasting() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

inline py::object wrap(Tensor t) {
  return py::reinterpret_steal<py::object>(THPVariable_Wrap(std::move(t)));
}

// Roles of the module's parameters (indices into `names`; -1: none).
enum Role { kW = 0, kR, kB, kWi, kWf, kWo, kP, kRoles };

// The weights of one call, read from the module's parameters just now.
struct Current {
  std::vector<py::object> values;  // owned: the parameters (or None), in `names` order
  Current() { values.reserve(8); }
  Tensor W, R;
  c10::optional<Tensor> b, peep, P;
  bool grad = false;
};

inline bool one_dim(const Tensor& t, int64_t n) { return t.dim() == 1 && t.size(0) == n; }

class Streamer {
 public:
  // act, ract: activation codes; names: the module's parameters the weights come
  // from (entries of `params`, read on every call); roles[r]: the index in names
  // of role r (W, R, b, w_i, w_f, w_o, P; -1: none; R -1: the rows of W after
  // the input depth, TF1's fused [x; h] kernel); gates[k]: the stored column
  // block of canonical gate k. grad(x, h, c, saved, *values) -> (h', c') records
  // a step for autograd (None: such steps are declined).
  Streamer(int64_t act, int64_t ract, double forget_bias, c10::optional<double> clip,
           c10::optional<double> pclip, py::dict params, py::tuple names,
           std::vector<int64_t> roles, std::vector<int64_t> gates, int64_t units, int64_t out,
           py::object grad, int64_t x_time_axis)
      : act_(act), ract_(ract), fb_(forget_bias), clip_(clip), pclip_(pclip),
        params_(std::move(params)), names_(std::move(names)), grad_(std::move(grad)),
        units_(units), out_(out), time_axis_(x_time_axis) {
    if (roles.size() != kRoles) throw py::value_error("Streamer: 7 roles expected");
    if (gates.size() != 4) throw py::value_error("Streamer: 4 gate blocks expected");
    const int64_t n = static_cast<int64_t>(py::len(names_));
    for (int r = 0; r < kRoles; ++r) {
      if (roles[r] < -1 || roles[r] >= n) throw py::value_error("Streamer: role out of range");
      roles_[r] = roles[r];
    }
    if (roles_[kW] < 0) throw py::value_error("Streamer: a W role is required");
    for (int k = 0; k < 4; ++k) gates_[k] = gates[k];
  }

  // One step on x (batch, depth) -- or (batch, 1, depth) / (1, batch, depth) for
  // time axis 1 / 0 -- with state h (batch, out), c (batch, units): (h', c'), or
  // None when the compiled step does not apply.
  py::object step(py::handle x, py::handle h, py::handle c) {
    if (autocasting()) return py::none();
    const Tensor* xt = exact_tensor(x.ptr());
    const Tensor* ht = exact_tensor(h.ptr());
    const Tensor* ct = exact_tensor(c.ptr());
    if (!xt || !ht || !ct) return py::none();
    Current w;
    Tensor x2, h2, c2;
    const Use use = applicable(*xt, *ht, *ct, w, x2, h2, c2);
    if (use == Use::kNo) return py::none();
    if (use == Use::kGrad) return with_grad(w, x2, h2, c2, h, c);
    auto out = run(w, x2, h2, c2);
    return py::make_tuple(wrap(std::move(out[0])), wrap(std::move(out[1])));
  }

  // A stateful layer's step: the state is read from and written back to
  // `buffers` (entries hname = h, cname = c) as fresh tensors, so that the
  // returned (h', c') never alias the stored state.
  py::object step_stateful(py::handle x, py::dict buffers, py::str hname, py::str cname) {
    if (autocasting()) return py::none();
    const Tensor* xt = exact_tensor(x.ptr());
    if (!xt) return py::none();
    // owned references: the entries may be replaced while Python code runs
    PyObject* hb = PyDict_GetItem(buffers.ptr(), hname.ptr());
    PyObject* cb = PyDict_GetItem(buffers.ptr(), cname.ptr());
    if (!hb || !cb) return py::none();
    py::object hobj = py::reinterpret_borrow<py::object>(hb);
    py::object cobj = py::reinterpret_borrow<py::object>(cb);
    if (!THPVariable_Check(hobj.ptr()) || !THPVariable_Check(cobj.ptr())) return py::none();
    const Tensor ht = THPVariable_Unpack(hobj.ptr());
    const Tensor ct = THPVariable_Unpack(cobj.ptr());
    Current w;
    Tensor x2, h2, c2;
    const Use use = applicable(*xt, ht, ct, w, x2, h2, c2);
    if (use == Use::kNo) return py::none();
    if (use == Use::kGrad) {
      py::object res = with_grad(w, x2, h2, c2, hobj, cobj);
      py::tuple pair = res.cast<py::tuple>();
      py::object h1 = pair[0], c1 = pair[1];
      if (!THPVariable_Check(h1.ptr()) || !THPVariable_Check(c1.ptr()))
        throw py::type_error("Streamer: the grad step must return two tensors");
      buffers[hname] = wrap(THPVariable_Unpack(h1.ptr()).detach().clone());
      buffers[cname] = wrap(THPVariable_Unpack(c1.ptr()).detach().clone());
      return res;
    }
    auto out = run(w, x2, h2, c2);
    buffers[hname] = wrap(out[0].clone());
    buffers[cname] = wrap(out[1].clone());
    return py::make_tuple(wrap(std::move(out[0])), wrap(std::move(out[1])));
  }

 private:
  enum class Use { kNo, kStep, kGrad };

  // Read the weights from the module's parameters as they are now; false when
  // the compiled step cannot run on them (a missing or non-tensor parameter,
  // another device or dtype, an unexpected shape or layout).
  bool fetch(Current& w) const {
    const int64_t n = static_cast<int64_t>(py::len(names_));
    const bool grad_mode = at::GradMode::is_enabled();
    for (int64_t i = 0; i < n; ++i) {
      PyObject* o = PyDict_GetItem(params_.ptr(), names_[i].ptr());
      if (o != nullptr && o != Py_None && !THPVariable_Check(o)) return false;
      w.values.push_back(o ? py::reinterpret_borrow<py::object>(o) : py::none());
    }
    auto get = [&](int role, Tensor& t) -> int {  // 1: set, 0: absent, -1: unusable
      const int64_t i = roles_[role];
      if (i < 0 || w.values[i].is_none()) return 0;
      t = THPVariable_Unpack(w.values[i].ptr());
      if (!t.defined() || !t.device().is_cpu() || t.layout() != c10::kStrided) return -1;
      const auto st = t.scalar_type();
      if (st != at::kFloat && st != at::kDouble) return -1;
      w.grad |= grad_mode && t.requires_grad();
      return 1;
    };
    const int64_t U = units_, Pn = out_;
    Tensor W;
    if (get(kW, W) != 1 || W.dim() != 2 || W.size(1) != 4 * U) return false;
    const auto st = W.scalar_type();
    if (roles_[kR] < 0) {  // [x; h] rows of one kernel: the step reads both parts of W
      if (W.size(0) <= Pn) return false;
      w.W = W;
    } else {
      Tensor R;
      if (get(kR, R) != 1 || R.dim() != 2 || R.size(0) != Pn || R.size(1) != 4 * U ||
          R.scalar_type() != st)
        return false;
      w.W = W;
      w.R = R;
    }
    if (!unit_strided(w.W) || (w.R.defined() && !unit_strided(w.R))) return false;
    Tensor b;
    const int hb = get(kB, b);
    if (hb < 0 || (hb == 1 && (!one_dim(b, 4 * U) || b.scalar_type() != st))) return false;
    if (hb == 1) w.b = b;
    if (roles_[kWi] >= 0) {
      Tensor p[3];
      for (int k = 0; k < 3; ++k)
        if (get(kWi + k, p[k]) != 1 || !one_dim(p[k], U) || p[k].scalar_type() != st ||
            !p[k].is_contiguous())
          return false;
      Tensor peep = at::empty({3, U}, W.options().requires_grad(false));
      const size_t bytes = static_cast<size_t>(U) * peep.element_size();
      auto* d = static_cast<char*>(peep.data_ptr());
      for (int k = 0; k < 3; ++k) std::memcpy(d + k * bytes, p[k].data_ptr(), bytes);
      w.peep = peep;
    }
    if (roles_[kP] >= 0) {
      Tensor P;
      if (get(kP, P) != 1 || P.dim() != 2 || P.size(0) != U || P.size(1) != Pn ||
          P.scalar_type() != st || !P.is_contiguous())
        return false;
      w.P = P;
    } else if (Pn != U) {
      return false;
    }
    return true;
  }

  // Whether (and how) the step applies to x, h, c; fills w and sets x2 (the
  // step's input as a (batch, depth) matrix), h2 and c2 to contiguous tensors
  // (copies only where the arguments are strided views).
  Use applicable(const Tensor& x, const Tensor& h, const Tensor& c, Current& w, Tensor& x2,
                 Tensor& h2, Tensor& c2) const {
    if (!fetch(w)) return Use::kNo;
    const auto st = w.W.scalar_type();
    for (const Tensor* t : {&x, &h, &c})
      if (!t->defined() || !t->device().is_cpu() || t->scalar_type() != st ||
          t->layout() != c10::kStrided)
        return Use::kNo;
    if (x.dim() != (time_axis_ >= 0 ? 3 : 2) || h.dim() != 2 || c.dim() != 2) return Use::kNo;
    if (time_axis_ >= 0) {
      if (x.size(time_axis_) != 1) return Use::kNo;
      x2 = x.select(time_axis_, 0).contiguous();
    } else {
      x2 = x.contiguous();
    }
    const int64_t B = x2.size(0);
    const int64_t depth = w.R.defined() ? w.W.size(0) : w.W.size(0) - out_;
    if (x2.size(1) != depth || h.size(0) != B || h.size(1) != out_ || c.size(0) != B ||
        c.size(1) != units_)
      return Use::kNo;
    h2 = h.contiguous();
    c2 = c.contiguous();
    if (w.grad || (at::GradMode::is_enabled() &&
                   (x.requires_grad() || h.requires_grad() || c.requires_grad())))
      return grad_.is_none() ? Use::kNo : Use::kGrad;
    return Use::kStep;
  }

  // A step that autograd records: computed here keeping what backward needs,
  // then handed to the Python `grad` callable (an autograd.Function that
  // records it and owns the backward) with the parameters it was computed from.
  py::object with_grad(const Current& w, const Tensor& x2, const Tensor& h2, const Tensor& c2,
                       py::handle h, py::handle c) const {
    std::vector<Tensor> out;
    {
      at::NoGradGuard no_grad;
      out = run(w, x2, h2, c2, true);
    }
    py::list args;
    args.append(wrap(x2));
    args.append(h);
    args.append(c);
    args.append(py::make_tuple(wrap(out[0]), wrap(out[1]), wrap(out[2]), wrap(out[3]),
                               wrap(out[4])));
    for (const auto& v : w.values) args.append(v);
    return grad_(*args);
  }

  std::vector<Tensor> run(const Current& w, const Tensor& x, const Tensor& h, const Tensor& c,
                          bool save = false) const {
    return lstmcompat::fused_step(x, w.W, w.R, w.b, fb_, h, c, w.peep, w.P, act_, ract_, clip_,
                                  pclip_, gates_, save);
  }

  int64_t act_, ract_;
  double fb_;
  c10::optional<double> clip_, pclip_;
  py::dict params_;
  py::tuple names_;
  py::object grad_;
  int64_t units_, out_;
  int64_t time_axis_;
  std::array<int64_t, kRoles> roles_{};
  std::array<int64_t, 4> gates_{};
};

}  // namespace

PYBIND11_MODULE(_fused_ext, m) {
  m.doc() = "lstmcompat fused kernel: Python entry points (the ops are torch.ops.lstmcompat_fused)";
  py::class_<Streamer>(m, "Streamer")
      .def(py::init<int64_t, int64_t, double, c10::optional<double>, c10::optional<double>,
                    py::dict, py::tuple, std::vector<int64_t>, std::vector<int64_t>, int64_t,
                    int64_t, py::object, int64_t>())
      .def("step", &Streamer::step)
      .def("step_stateful", &Streamer::step_stateful);
}
