// Module: the base of every layer. A module owns named parameters (leaf tensors with
// requires_grad) and named submodules; names compose with dots, so a model's parameters read
// `blocks.3.mlp.fc.weight`. Parameters are Tensor handles: rebinding a parameter's TensorImpl
// (ParameterBuffer::pack, to()) is seen by every holder of the handle, so layers keep plain
// `Tensor weight` members.
#pragma once
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "framework/core/tensor.h"

namespace sparrow::nn {

// Whether AdamW decays a parameter. Auto applies the name rule (weight_decay_by_rule).
enum class WeightDecay : uint8_t { Auto, Yes, No };

struct NamedParameter {
  std::string name;   // full dotted name
  Tensor tensor;      // the parameter itself (same TensorImpl as the module's member)
  bool weight_decay;  // resolved: the explicit flag, or the name rule
};

// The rule for WeightDecay::Auto: 1-D (and 0-D) parameters, names ending in ".bias" and names
// containing "norm" get no decay; everything else (matrices, embeddings) does.
bool weight_decay_by_rule(const std::string& full_name, const Tensor& t);

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Registers t as a parameter (marks it requires_grad) and returns the same handle. Names are
  // non-empty, hold no '.', and are unique among this module's parameters and submodules.
  Tensor register_parameter(const std::string& name, Tensor t, WeightDecay decay = WeightDecay::Auto);

  // Registers a submodule (kept alive by this module) and returns it.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_module(name, m);
    return m;
  }

  // Every parameter of this module and its descendants, depth first, each module's own
  // parameters and submodules in the order they were registered. A parameter registered under
  // several names (tied weights) appears once, under the first.
  std::vector<NamedParameter> named_parameters() const;
  std::vector<Tensor> parameters() const;
  // Parameter by full dotted name; throws listing nothing more than the missing name.
  Tensor parameter(const std::string& full_name) const;
  int64_t num_parameters() const;  // elements, summed

  // Direct submodules, in registration order.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children() const;

  // Training mode (dropout on) or evaluation mode; applies to every descendant.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves / converts every parameter in place (each handle keeps its identity; gradients are
  // dropped). A module packed into a ParameterBuffer leaves it by this: pack again afterwards.
  void to(Device device);
  void to(DType dtype);

  // Drops every parameter's gradient (a packed model zeroes its flat buffer instead:
  // ParameterBuffer::zero_grad keeps the gradient views in place).
  void zero_grad();

 private:
  void add_module(const std::string& name, std::shared_ptr<Module> m);
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, std::vector<NamedParameter>& out,
               std::unordered_set<const TensorImpl*>& seen) const;

  // One registration in order: a parameter (tensor defined) or a submodule.
  struct Slot {
    std::string name;
    Tensor param;
    WeightDecay decay = WeightDecay::Auto;
    std::shared_ptr<Module> module;
  };
  std::vector<Slot> slots_;
  bool training_ = true;
};

// A list of submodules named by index: `blocks.0`, `blocks.1`, ...
class ModuleList : public Module {
 public:
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    items_.push_back(m);
    return register_module(std::to_string(items_.size() - 1), std::move(m));
  }
  size_t size() const { return items_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const { return items_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

// Points dst's TensorImpl at src's storage and view (shape, strides, offset, dtype), keeping
// dst's identity and autograd flags. Used to rebind parameters in place.
void rebind(Tensor& dst, const Tensor& src);

}  // namespace sparrow::nn
