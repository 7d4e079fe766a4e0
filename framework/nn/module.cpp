#include "framework/nn/module.h"

#include <unordered_set>

#include "framework/autograd/node.h"

namespace sparrow::nn {

bool weight_decay_by_rule(const std::string& name, const Tensor& t) {
  if (t.dim() <= 1) return false;
  const std::string bias = ".bias";
  if (name == "bias" || (name.size() >= bias.size() && name.compare(name.size() - bias.size(), bias.size(), bias) == 0))
    return false;
  return name.find("norm") == std::string::npos;
}

void Module::check_new_name(const std::string& name) const {
  SPARROW_CHECK(!name.empty(), "Module: empty parameter/submodule name");
  SPARROW_CHECK(name.find('.') == std::string::npos, "Module: name '", name, "' contains a '.'");
  for (const Slot& s : slots_) SPARROW_CHECK(s.name != name, "Module: name '", name, "' registered twice");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, WeightDecay decay) {
  check_new_name(name);
  SPARROW_CHECK(t.defined(), "Module: parameter '", name, "' is an undefined tensor");
  SPARROW_CHECK(t.is_leaf(), "Module: parameter '", name, "' is not a leaf (detach() it first)");
  t.requires_grad_(true);
  slots_.push_back(Slot{name, t, decay, nullptr});
  return t;
}

void Module::add_module(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name);
  SPARROW_CHECK(m != nullptr, "Module: submodule '", name, "' is null");
  SPARROW_CHECK(m.get() != this, "Module: '", name, "' registers a module inside itself");
  m->train(training_);
  slots_.push_back(Slot{name, Tensor(), WeightDecay::Auto, std::move(m)});
}

void Module::collect(const std::string& prefix, std::vector<NamedParameter>& out,
                     std::unordered_set<const TensorImpl*>& seen) const {
  for (const Slot& s : slots_) {
    const std::string full = prefix + s.name;
    if (s.module) {
      s.module->collect(full + ".", out, seen);
    } else if (seen.insert(&s.param.impl()).second) {  // a tied parameter counts once, first name
      bool decay = s.decay == WeightDecay::Auto ? weight_decay_by_rule(full, s.param) : s.decay == WeightDecay::Yes;
      out.push_back(NamedParameter{full, s.param, decay});
    }
  }
}

std::vector<NamedParameter> Module::named_parameters() const {
  std::vector<NamedParameter> out;
  std::unordered_set<const TensorImpl*> seen;
  collect("", out, seen);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& p : named_parameters()) out.push_back(p.tensor);
  return out;
}

Tensor Module::parameter(const std::string& full_name) const {
  for (auto& p : named_parameters())
    if (p.name == full_name) return p.tensor;
  fail("Module: no parameter named '", full_name, "'");
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& p : named_parameters()) n += p.tensor.numel();
  return n;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::children() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (const Slot& s : slots_)
    if (s.module) out.emplace_back(s.name, s.module);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (Slot& s : slots_)
    if (s.module) s.module->train(on);
}

void rebind(Tensor& dst, const Tensor& src) {
  TensorImpl& d = dst.impl();
  const TensorImpl& s = src.impl();
  d.storage = s.storage;
  d.shape = s.shape;
  d.strides = s.strides;
  d.offset = s.offset;
  d.dtype = s.dtype;
}

void Module::to(Device device) {
  NoGradGuard ng;
  for (auto& p : named_parameters()) {
    if (p.tensor.device() == device) continue;
    Tensor moved = empty(p.tensor.shape(), p.tensor.dtype(), device);
    copy_(moved, p.tensor);
    rebind(p.tensor, moved);
    p.tensor.zero_grad();
  }
}

void Module::to(DType dtype) {
  NoGradGuard ng;
  SPARROW_CHECK(is_floating(dtype), "Module::to: parameters must stay floating, got ", dtype_name(dtype));
  for (auto& p : named_parameters()) {
    if (p.tensor.dtype() == dtype) continue;
    Tensor cast_copy = empty(p.tensor.shape(), dtype, p.tensor.device());
    copy_(cast_copy, p.tensor);
    rebind(p.tensor, cast_copy);
    p.tensor.zero_grad();
  }
}

void Module::zero_grad() {
  for (auto& p : named_parameters()) p.tensor.zero_grad();
}

}  // namespace sparrow::nn
