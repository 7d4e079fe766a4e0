// ParameterBuffer: every parameter of a model in one contiguous buffer, and every gradient in a
// second one of the same layout, so an optimizer step, a gradient all-reduce and a checkpoint
// write each touch one buffer.
//
// pack() allocates the flat buffer, copies each parameter into its slice and rebinds the
// parameter's TensorImpl to a view of that slice (the model's handles follow). It also sets each
// parameter's .grad to a view of the flat gradient buffer: the autograd engine accumulates into
// an existing gradient in place (add_), so after backward the gradients already sit in the flat
// buffer, and zero_grad() is one fill.
//
// Layout: parameters that take weight decay first, then those that do not (each group in
// registration order), so AdamW decays the prefix [0, decay_numel()) of one fused loop. Each
// slice starts on a 64-byte boundary (vector loads); the padding between slices is zero in
// both buffers and stays zero under every optimizer here.
//
// The handle is cheap to copy: copies share one buffer.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "framework/nn/module.h"

namespace sparrow::nn {

struct ParameterSlot {
  std::string name;
  Tensor param;    // the model's parameter (now a view of data())
  Tensor grad;     // its gradient: a view of grad()
  int64_t offset;  // first element in the flat buffers
  bool weight_decay;
};

class ParameterBuffer {
 public:
  ParameterBuffer() = default;
  static ParameterBuffer pack(Module& model, DType dtype = DType::F32, Device device = Device::cpu());

  bool defined() const { return s_ != nullptr; }
  const Tensor& data() const;                       // flat [numel()] parameters
  const Tensor& grad() const;                       // flat [numel()] gradients
  int64_t numel() const { return data().numel(); }  // including alignment padding
  int64_t decay_numel() const;                      // [0, decay_numel()) takes weight decay
  DType dtype() const { return data().dtype(); }
  Device device() const { return data().device(); }
  const std::vector<ParameterSlot>& slots() const;           // registration order
  const ParameterSlot& slot(const std::string& name) const;  // throws naming the missing name

  // Zeroes the flat gradient buffer and re-points any parameter whose .grad was dropped or
  // replaced at its view again.
  void zero_grad();
  // Throws unless every parameter still views the flat buffer at its slot and its gradient is
  // still the flat gradient view (to(), set_grad or zero_grad on a parameter break this, and an
  // optimizer would otherwise step stale memory). Cost: O(number of parameters).
  void check_bound() const;

  // The slice of any flat tensor with this layout (e.g. AdamW's m, a bf16 compute copy) that
  // belongs to slot s, shaped like the parameter.
  Tensor view_of(const Tensor& flat, const ParameterSlot& s) const;

  // Name → tensor maps for checkpoints. Views of the flat buffers; slots in registration order.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_gradients() const;
  // Each slot's view into any flat tensor of this layout, by name.
  std::vector<std::pair<std::string, Tensor>> named_views(const Tensor& flat) const;

  // Checkpoint weights as one safetensors file: the flat buffer crosses to the host once, then
  // each slice is written under its name. load() reads into the flat buffer (one transfer) after
  // checking every name, shape and dtype (throws naming the file and the tensor).
  void save(const std::string& path, const std::map<std::string, std::string>& metadata = {}) const;
  void load(const std::string& path) const;

 private:
  struct State {
    Tensor data, grad;
    int64_t decay_numel = 0;
    std::vector<ParameterSlot> slots;
    std::vector<std::shared_ptr<TensorImpl>> grad_impls;  // what each parameter's .grad must be
  };
  std::shared_ptr<State> s_;
  const State& state() const;
};

}  // namespace sparrow::nn
