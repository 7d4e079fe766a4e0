// Tensor: a strided view (shape, strides, offset — all in elements) over shared Storage, with
// the autograd hooks (requires_grad, grad, grad_fn). Copying a Tensor copies a handle: both
// copies name the same TensorImpl. Views (reshape of a contiguous tensor, transpose, permute,
// slice) share storage; compute ops produce contiguous outputs.
#pragma once
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "framework/core/bf16.h"
#include "framework/core/device.h"
#include "framework/core/dtype.h"
#include "framework/core/error.h"
#include "framework/core/shape.h"
#include "framework/core/storage.h"

namespace sparrow {

class Node;
class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::F32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;     // set on results of recorded ops; null on leaves
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  bool is_cuda() const { return device().is_cuda(); }
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }

  // Pointer to element [0,...,0]. data<T>() checks that T matches the dtype.
  void* data_ptr() const;
  template <class T>
  T* data() const;

  // --- autograd ----------------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const;  // undefined until a backward reaches this leaf
  void set_grad(const Tensor& g);
  void zero_grad();  // drops the accumulated gradient
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  // Runs reverse-mode differentiation from this tensor. `grad` defaults to 1 for a scalar.
  void backward(const Tensor& grad = Tensor()) const;
  // Same storage and view, no history.
  Tensor detach() const;

  // --- conversions (recorded by autograd) ----------------------------------------------------
  Tensor contiguous() const;
  Tensor to(Device d) const;
  Tensor to(DType t) const;
  Tensor clone() const;

  // --- views and common ops as methods (see framework/ops/ops.h) ------------------------------
  Tensor reshape(const Shape& s) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor permute(const std::vector<int64_t>& order) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end) const;

  // --- host access (copies to the CPU as needed) ----------------------------------------------
  double item() const;                    // one-element tensors
  std::vector<double> to_vector() const;  // every element, row-major, as double
  std::vector<float> to_float_vector() const;

  TensorImpl& impl() const {
    SPARROW_CHECK(impl_, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// --- factories ---------------------------------------------------------------------------------
Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
// Values are converted to dtype (I32 rounds toward zero).
Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::F32,
                   Device device = Device::cpu());
Tensor from_vector(const std::vector<float>& values, const Shape& shape, DType dtype = DType::F32,
                   Device device = Device::cpu());
Tensor from_ints(const std::vector<int32_t>& values, const Shape& shape, Device device = Device::cpu());
// The values fill(buffer, n) writes, in order, chunk by chunk (converted as from_vector does): a
// tensor of billions of elements without a host vector of doubles as large (random inputs at 4M
// tokens: 4.3e9 elements, 34 GB as doubles).
Tensor from_chunks(const Shape& shape, DType dtype, Device device, const std::function<void(double*, int64_t)>& fill);
Tensor scalar_tensor(double v, DType dtype = DType::F32, Device device = Device::cpu());
// A strided view of t's storage (no copy). Used by view ops; checks bounds.
Tensor make_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset);

// Copies src's elements into dst (same shape; any strides, dtypes and devices). No autograd.
void copy_(Tensor& dst, const Tensor& src);
// dst += src on one device, src converted from its float dtype as it is read (no autograd).
void accumulate_(Tensor& dst, const Tensor& src);

std::string describe(const Tensor& t);  // "f32[2, 3] on cpu"

// Checks used by ops; each names the op in its message.
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
void check_float(const char* op, const Tensor& a);
void check_dim(const char* op, const Tensor& a, int64_t ndim);

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::F32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::F64;
}
template <>
constexpr DType dtype_of<bf16>() {
  return DType::BF16;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::I32;
}

template <class T>
T* Tensor::data() const {
  SPARROW_CHECK(dtype() == dtype_of<T>(), "data<", dtype_name(dtype_of<T>()), ">() on a ", dtype_name(dtype()),
                " tensor");
  return static_cast<T*>(data_ptr());
}

}  // namespace sparrow
