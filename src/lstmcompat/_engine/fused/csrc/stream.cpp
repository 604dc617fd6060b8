// Streaming inference from Python with the least per-call work: a `Streamer`
// keeps one module's prepared step weights on the C++ side and checks, per call,
// everything that decides whether the compiled step may run (tensor types,
// dtype, device, shapes, contiguity, LSTMCOMPAT_KERNEL, and whether the
// module's parameters were replaced or modified since they were prepared).
// `step` returns None whenever a check fails: the caller then takes its general
// path, which gives the same numbers or the error the front-end documents.
// When autograd records, the step goes to the Python `grad` callable (an
// autograd.Function on the same prepared weights) with the checks already done.
//
// Python binding only (pybind11, Python headers); built into the same library
// as fused_lstm.cpp when the headers are available.
#include <torch/csrc/autograd/python_variable.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "fused_lstm.h"

namespace py = pybind11;
using at::Tensor;

namespace {

// The Tensor behind a Python object when it is exactly a torch.Tensor (no
// subclass, so that __torch_function__ overrides keep their general path).
inline const Tensor* exact_tensor(PyObject* o) {
  return THPVariable_CheckExact(o) ? &THPVariable_Unpack(o) : nullptr;
}

inline py::object wrap(Tensor t) {
  return py::reinterpret_steal<py::object>(THPVariable_Wrap(std::move(t)));
}

// The parameters the prepared weights were made from: the owner's parameter
// dict, the names read from it and, per name, the identity, storage and
// version of the tensor that was there (nullptr: the entry was None/absent).
struct Source {
  py::object name;
  const c10::TensorImpl* impl = nullptr;
  const void* data = nullptr;
  uint32_t version = 0;
};

class Streamer {
 public:
  // act, ract: activation codes; make(*params) -> (W, R, b, peep, P, packed, nt)
  // prepares the step weights from the current parameters (called on first use
  // and whenever one of them changed).
  // grad(x, h, c, saved, prepared, *params) -> (h', c') records a step for autograd
  // (None: such steps are declined).
  Streamer(int64_t act, int64_t ract, double forget_bias, c10::optional<double> clip,
           c10::optional<double> pclip, py::dict params, py::tuple names, py::object make,
           py::object grad, int64_t x_time_axis)
      : act_(act), ract_(ract), fb_(forget_bias), clip_(clip), pclip_(pclip),
        params_(std::move(params)), make_(std::move(make)), grad_(std::move(grad)),
        time_axis_(x_time_axis) {
    for (auto n : names) sources_.push_back(Source{py::reinterpret_borrow<py::object>(n)});
  }

  // One step on x (batch, depth) -- or (batch, 1, depth) / (1, batch, depth) for
  // time axis 1 / 0 -- with state h (batch, out), c (batch, units): (h', c'), or
  // None when the compiled step does not apply.
  py::object step(py::handle x, py::handle h, py::handle c) {
    const Tensor* xt = exact_tensor(x.ptr());
    const Tensor* ht = exact_tensor(h.ptr());
    const Tensor* ct = exact_tensor(c.ptr());
    if (!xt || !ht || !ct) return py::none();
    Tensor x2, h2, c2;
    const Use use = applicable(*xt, *ht, *ct, x2, h2, c2);
    if (use == Use::kNo) return py::none();
    if (use == Use::kGrad) return with_grad(x2, h2, c2, h, c);
    auto out = run(x2, h2, c2);
    return py::make_tuple(wrap(std::move(out[0])), wrap(std::move(out[1])));
  }

  // A stateful layer's step: the state is read from and written back to
  // `buffers` (entries state_names[0] = h, [1] = c) as fresh tensors, so that the
  // returned (h', c') never alias the stored state.
  py::object step_stateful(py::handle x, py::dict buffers, py::str hname, py::str cname) {
    PyObject* hobj = PyDict_GetItem(buffers.ptr(), hname.ptr());
    PyObject* cobj = PyDict_GetItem(buffers.ptr(), cname.ptr());
    const Tensor* xt = exact_tensor(x.ptr());
    if (!xt || !hobj || !cobj || !THPVariable_Check(hobj) || !THPVariable_Check(cobj))
      return py::none();
    const Tensor& ht = THPVariable_Unpack(hobj);
    const Tensor& ct = THPVariable_Unpack(cobj);
    Tensor x2, h2, c2;
    const Use use = applicable(*xt, ht, ct, x2, h2, c2);
    if (use == Use::kNo) return py::none();
    py::object res;
    if (use == Use::kGrad) {
      res = with_grad(x2, h2, c2, py::handle(hobj), py::handle(cobj));
      auto pair = res.cast<py::tuple>();
      buffers[hname] = wrap(THPVariable_Unpack(pair[0].ptr()).detach().clone());
      buffers[cname] = wrap(THPVariable_Unpack(pair[1].ptr()).detach().clone());
      return res;
    }
    auto out = run(x2, h2, c2);
    buffers[hname] = wrap(out[0].clone());
    buffers[cname] = wrap(out[1].clone());
    return py::make_tuple(wrap(std::move(out[0])), wrap(std::move(out[1])));
  }

 private:
  enum class Use { kNo, kStep, kGrad };

  // Whether (and how) the step applies to x, h, c; sets x2 (the step's input as a
  // (batch, depth) matrix), h2 and c2 to contiguous tensors (copies, recorded by
  // autograd when it records, only where the arguments are strided views).
  Use applicable(const Tensor& x, const Tensor& h, const Tensor& c, Tensor& x2, Tensor& h2,
                 Tensor& c2) {
    const char* forced = std::getenv("LSTMCOMPAT_KERNEL");
    if (forced && *forced) return Use::kNo;
    const Use use = current();
    if (use == Use::kNo) return use;
    const auto st = W_.scalar_type();
    for (const Tensor* t : {&x, &h, &c})
      if (!t->defined() || !t->device().is_cpu() || t->scalar_type() != st) return Use::kNo;
    if (x.dim() != (time_axis_ >= 0 ? 3 : 2) || h.dim() != 2 || c.dim() != 2) return Use::kNo;
    if (time_axis_ >= 0) {
      if (x.size(time_axis_) != 1) return Use::kNo;
      x2 = x.select(time_axis_, 0).contiguous();
    } else {
      x2 = x.contiguous();
    }
    h2 = h.contiguous();
    c2 = c.contiguous();
    const int64_t B = x2.size(0), U = W_.size(1) / 4, Pn = R_.size(0);
    if (x2.size(1) != W_.size(0) || h.size(0) != B || h.size(1) != Pn || c.size(0) != B ||
        c.size(1) != U)
      return Use::kNo;
    if (use == Use::kGrad ||
        (at::GradMode::is_enabled() && (x.requires_grad() || h.requires_grad() ||
                                        c.requires_grad())))
      return grad_.is_none() ? Use::kNo : Use::kGrad;
    return Use::kStep;
  }

  // Whether the prepared weights match the owner's current parameters,
  // re-preparing them when a parameter changed: kNo when they cannot be used (a
  // parameter is not a tensor, or one the step does not run), kGrad when a
  // parameter would record a gradient, else kStep.
  Use current() {
    bool stale = !ready_, grad = false;
    const bool grad_mode = at::GradMode::is_enabled();
    for (auto& s : sources_) {
      PyObject* o = PyDict_GetItem(params_.ptr(), s.name.ptr());  // borrowed
      if (o == nullptr || o == Py_None) {
        stale |= s.impl != nullptr;
        continue;
      }
      if (!THPVariable_Check(o)) return Use::kNo;
      const Tensor& t = THPVariable_Unpack(o);
      grad |= grad_mode && t.requires_grad();
      stale |= t.unsafeGetTensorImpl() != s.impl || !t.has_storage() ||
               t.storage().data() != s.data || t._version() != s.version;
    }
    if (stale) prepare();
    if (!ready_) return Use::kNo;
    return grad ? Use::kGrad : Use::kStep;
  }

  // A step that autograd records: computed here keeping what backward needs,
  // then handed to the Python `grad` callable (an autograd.Function that
  // records it and owns the backward).
  py::object with_grad(const Tensor& x2, const Tensor& h2, const Tensor& c2, py::handle h,
                       py::handle c) {
    auto out = run(x2, h2, c2, true);
    py::list args;
    args.append(wrap(x2));
    args.append(h);
    args.append(c);
    args.append(py::make_tuple(wrap(out[0]), wrap(out[1]), wrap(out[2]), wrap(out[3]),
                               wrap(out[4])));
    args.append(prepared_);
    for (auto& s : sources_) {
      PyObject* o = PyDict_GetItem(params_.ptr(), s.name.ptr());
      args.append(o ? py::reinterpret_borrow<py::object>(o) : py::none());
    }
    return grad_(*args);
  }

  void prepare() {
    ready_ = false;
    py::list args;
    for (auto& s : sources_) {
      PyObject* o = PyDict_GetItem(params_.ptr(), s.name.ptr());
      s.impl = nullptr;
      s.data = nullptr;
      s.version = 0;
      if (o != nullptr && o != Py_None && THPVariable_Check(o)) {
        const Tensor& t = THPVariable_Unpack(o);
        s.impl = t.unsafeGetTensorImpl();
        s.data = t.has_storage() ? t.storage().data() : nullptr;
        s.version = t._version();
        args.append(py::reinterpret_borrow<py::object>(o));
      } else {
        args.append(py::none());
      }
    }
    py::object res;
    {
      // Prepared tensors are plain values: no graph, whatever the caller's mode.
      at::NoGradGuard no_grad;
      res = make_(*args);
    }
    if (res.is_none()) return;
    auto tup = res.cast<py::tuple>();
    prepared_ = tup;
    auto opt = [&](int i) -> c10::optional<Tensor> {
      if (tup[i].is_none()) return c10::nullopt;
      return THPVariable_Unpack(tup[i].ptr());
    };
    W_ = THPVariable_Unpack(tup[0].ptr());
    R_ = THPVariable_Unpack(tup[1].ptr());
    b_ = opt(2);
    peep_ = opt(3);
    P_ = opt(4);
    packed_ = opt(5);
    nt_ = tup[6].cast<int64_t>();
    ready_ = true;
  }

  std::vector<Tensor> run(const Tensor& x, const Tensor& h, const Tensor& c, bool save = false) {
    return lstmcompat::fused_step(x, W_, R_, b_, fb_, h, c, peep_, P_, act_, ract_, clip_, pclip_,
                                  packed_, nt_, save);
  }

  int64_t act_, ract_;
  double fb_;
  c10::optional<double> clip_, pclip_;
  py::dict params_;
  py::object make_, grad_;
  py::tuple prepared_;
  int64_t time_axis_;
  std::vector<Source> sources_;
  bool ready_ = false;
  Tensor W_, R_;
  c10::optional<Tensor> b_, peep_, P_, packed_;
  int64_t nt_ = 0;
};

}  // namespace

PYBIND11_MODULE(_fused_ext, m) {
  m.doc() = "lstmcompat fused kernel: Python entry points (the ops are torch.ops.lstmcompat_fused)";
  py::class_<Streamer>(m, "Streamer")
      .def(py::init<int64_t, int64_t, double, c10::optional<double>, c10::optional<double>,
                    py::dict, py::tuple, py::object, py::object, int64_t>())
      .def("step", &Streamer::step)
      .def("step_stateful", &Streamer::step_stateful);
}
