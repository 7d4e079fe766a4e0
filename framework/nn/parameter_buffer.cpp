#include "framework/nn/parameter_buffer.h"

#include "framework/autograd/node.h"
#include "framework/nn/safetensors.h"

namespace sparrow::nn {

namespace {
constexpr int64_t kAlignBytes = 64;

int64_t align_up(int64_t n, int64_t a) { return (n + a - 1) / a * a; }
}  // namespace

ParameterBuffer ParameterBuffer::pack(Module& model, DType dtype, Device device) {
  SPARROW_CHECK(is_floating(dtype), "ParameterBuffer::pack: dtype ", dtype_name(dtype), " is not floating");
  std::vector<NamedParameter> params = model.named_parameters();
  SPARROW_CHECK(!params.empty(), "ParameterBuffer::pack: the model has no parameters");
  const int64_t align = kAlignBytes / static_cast<int64_t>(dtype_size(dtype));

  auto s = std::make_shared<State>();
  // Offsets: the decaying group first, then the rest, each in registration order.
  std::vector<int64_t> offsets(params.size());
  int64_t total = 0;
  for (int pass = 0; pass < 2; ++pass) {
    const bool decay = pass == 0;
    for (size_t i = 0; i < params.size(); ++i) {
      if (params[i].weight_decay != decay) continue;
      offsets[i] = total;
      total = align_up(total + params[i].tensor.numel(), align);
    }
    if (decay) s->decay_numel = total;
  }

  // Zeroed, so the padding between slices is zero (and stays so: its gradient is zero too).
  s->data = zeros({total}, dtype, device);
  s->grad = zeros({total}, dtype, device);
  NoGradGuard ng;
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor& p = params[i].tensor;
    const Shape shape = p.shape();
    const Shape strides = contiguous_strides(shape);
    Tensor view = make_view(s->data, shape, strides, offsets[i]);
    copy_(view, p);
    rebind(p, view);
    Tensor g = make_view(s->grad, shape, strides, offsets[i]);
    p.set_grad(g);
    s->slots.push_back(ParameterSlot{params[i].name, p, g, offsets[i], params[i].weight_decay});
    s->grad_impls.push_back(g.impl_ptr());
  }
  ParameterBuffer b;
  b.s_ = std::move(s);
  return b;
}

const ParameterBuffer::State& ParameterBuffer::state() const {
  SPARROW_CHECK(s_, "ParameterBuffer: use before pack()");
  return *s_;
}

const Tensor& ParameterBuffer::data() const { return state().data; }
const Tensor& ParameterBuffer::grad() const { return state().grad; }
int64_t ParameterBuffer::decay_numel() const { return state().decay_numel; }
const std::vector<ParameterSlot>& ParameterBuffer::slots() const { return state().slots; }

const ParameterSlot& ParameterBuffer::slot(const std::string& name) const {
  for (const ParameterSlot& s : state().slots)
    if (s.name == name) return s;
  fail("ParameterBuffer: no parameter named '", name, "'");
}

void ParameterBuffer::zero_grad() {
  const State& st = state();
  Tensor g = st.grad;
  if (g.nbytes()) device_memory::fill_zero(g.data_ptr(), g.nbytes(), g.device());
  for (size_t i = 0; i < st.slots.size(); ++i) {
    Tensor p = st.slots[i].param;
    if (p.impl().grad != st.grad_impls[i]) p.set_grad(st.slots[i].grad);
  }
}

void ParameterBuffer::check_bound() const {
  const State& st = state();
  const auto& storage = st.data.impl().storage;
  for (size_t i = 0; i < st.slots.size(); ++i) {
    const ParameterSlot& s = st.slots[i];
    const TensorImpl& p = s.param.impl();
    SPARROW_CHECK(p.storage == storage && p.offset == s.offset && p.dtype == st.data.dtype() &&
                      p.strides == contiguous_strides(p.shape),
                  "ParameterBuffer: parameter '", s.name,
                  "' no longer views the flat buffer (moved or converted after pack()? pack again)");
    SPARROW_CHECK(p.grad == st.grad_impls[i], "ParameterBuffer: the gradient of '", s.name,
                  "' is not the flat-buffer view (dropped or replaced by zero_grad/set_grad on the "
                  "parameter; call ParameterBuffer::zero_grad instead)");
  }
}

Tensor ParameterBuffer::view_of(const Tensor& flat, const ParameterSlot& s) const {
  SPARROW_CHECK(flat.dim() == 1 && flat.numel() == numel() && flat.is_contiguous(),
                "ParameterBuffer::view_of: ", describe(flat), " does not have the buffer's layout of ", numel(),
                " elements");
  const Shape& shape = s.param.shape();
  return make_view(flat, shape, contiguous_strides(shape), flat.offset() + s.offset);
}

std::vector<std::pair<std::string, Tensor>> ParameterBuffer::named_parameters() const { return named_views(data()); }

std::vector<std::pair<std::string, Tensor>> ParameterBuffer::named_gradients() const { return named_views(grad()); }

void ParameterBuffer::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  Tensor host = data();
  if (!host.device().is_cpu()) {
    host = empty(data().shape(), dtype(), Device::cpu());
    copy_(host, data());
  }
  save_safetensors(path, named_views(host), metadata);
}

void ParameterBuffer::load(const std::string& path) const {
  Tensor host = data().device().is_cpu() ? data() : zeros(data().shape(), dtype(), Device::cpu());
  // Validation happens inside before anything is written, so a failed load leaves the model as is.
  load_safetensors_into(path, named_views(host));
  if (!host.same(data())) {
    Tensor d = data();
    copy_(d, host);
  }
}

std::vector<std::pair<std::string, Tensor>> ParameterBuffer::named_views(const Tensor& flat) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const ParameterSlot& s : slots()) out.emplace_back(s.name, view_of(flat, s));
  return out;
}

}  // namespace sparrow::nn
