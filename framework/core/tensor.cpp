#include "framework/core/tensor.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/strided.h"
#include "framework/ops/cuda/copy.h"
#include "framework/ops/ops.h"

namespace sparrow {

DType parse_dtype(const std::string& s) {
  if (s == "f32" || s == "float32" || s == "float") return DType::F32;
  if (s == "f64" || s == "float64" || s == "double") return DType::F64;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "i32" || s == "int32") return DType::I32;
  throw std::invalid_argument("unknown dtype '" + s + "' (expected f32, f64, bf16 or i32)");
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      int i = std::stoi(s.substr(5), &used);
      if (used == s.size() - 5 && i >= 0) return cuda(i);
    } catch (const std::exception&) {}
  }
  throw std::invalid_argument("unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
}

int64_t Tensor::size(int64_t d) const { return shape()[normalize_dim(d, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] != 1 && strides()[i] != expect) return false;
    expect *= shape()[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  return static_cast<char*>(impl().storage->data) + impl().offset * static_cast<int64_t>(dtype_size(dtype()));
}

Tensor& Tensor::requires_grad_(bool on) {
  SPARROW_CHECK(!on || is_floating(dtype()), "requires_grad on a ", dtype_name(dtype()), " tensor");
  SPARROW_CHECK(is_leaf(), "requires_grad_ on a non-leaf tensor (use detach() first)");
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
void Tensor::set_grad(const Tensor& g) { impl().grad = g.defined() ? g.impl_ptr() : nullptr; }
void Tensor::zero_grad() { impl().grad = nullptr; }

void Tensor::backward(const Tensor& grad) const {
  Tensor g = grad;
  if (!g.defined()) {
    SPARROW_CHECK(numel() == 1, "backward() without a gradient needs a one-element tensor, got ", shape_str(shape()));
    g = full(shape(), 1.0, dtype(), device());
  }
  SPARROW_CHECK(g.shape() == shape(), "backward: gradient shape ", shape_str(g.shape()), " != tensor shape ",
                shape_str(shape()));
  run_backward(*this, g);
}

Tensor Tensor::detach() const {
  auto p = std::make_shared<TensorImpl>();
  p->storage = impl().storage;
  p->shape = impl().shape;
  p->strides = impl().strides;
  p->offset = impl().offset;
  p->dtype = impl().dtype;
  return Tensor(p);
}

Tensor Tensor::contiguous() const { return sparrow::contiguous(*this); }
Tensor Tensor::to(Device d) const { return d == device() ? *this : to_device(*this, d); }
Tensor Tensor::to(DType t) const { return t == dtype() ? *this : cast(*this, t); }
Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  copy_(out, *this);
  return record(out, "clone", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}
Tensor Tensor::reshape(const Shape& s) const { return sparrow::reshape(*this, s); }
Tensor Tensor::transpose(int64_t a, int64_t b) const { return sparrow::transpose(*this, a, b); }
Tensor Tensor::permute(const std::vector<int64_t>& o) const { return sparrow::permute(*this, o); }
Tensor Tensor::slice(int64_t d, int64_t s, int64_t e) const { return sparrow::slice(*this, d, s, e); }

std::vector<double> Tensor::to_vector() const {
  Tensor h = empty(shape(), DType::F64, Device::cpu());
  copy_(h, *this);
  const double* p = h.data<double>();
  return std::vector<double>(p, p + numel());
}

std::vector<float> Tensor::to_float_vector() const {
  Tensor h = empty(shape(), DType::F32, Device::cpu());
  copy_(h, *this);
  const float* p = h.data<float>();
  return std::vector<float>(p, p + numel());
}

double Tensor::item() const {
  SPARROW_CHECK(numel() == 1, "item() on a tensor of shape ", shape_str(shape()));
  return to_vector()[0];
}

// --- factories ---------------------------------------------------------------------------------

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) SPARROW_CHECK(d >= 0, "empty: negative dimension in ", shape_str(shape));
  auto p = std::make_shared<TensorImpl>();
  p->storage = std::make_shared<Storage>(static_cast<size_t>(shape_nbytes(shape, dtype_size(dtype))), device);
  p->shape = shape;
  p->strides = contiguous_strides(shape);
  p->dtype = dtype;
  return Tensor(p);
}

Tensor zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (t.nbytes()) device_memory::fill_zero(t.data_ptr(), t.nbytes(), device);
  return t;
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  fill_(t, value);
  return t;
}

Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

namespace {
// Element-wise, so the same values on any number of threads.
template <class T>
void store_as(void* dst, DType dt, const T* src, int64_t n) {
  constexpr int64_t kSerial = 1 << 16;
  switch (dt) {
    case DType::F32: {
      auto* d = static_cast<float*>(dst);
#pragma omp parallel for schedule(static) if (n > kSerial)
      for (int64_t i = 0; i < n; ++i) d[i] = float(src[i]);
      break;
    }
    case DType::F64: {
      auto* d = static_cast<double*>(dst);
#pragma omp parallel for schedule(static) if (n > kSerial)
      for (int64_t i = 0; i < n; ++i) d[i] = double(src[i]);
      break;
    }
    case DType::BF16: {
      auto* d = static_cast<bf16*>(dst);
#pragma omp parallel for schedule(static) if (n > kSerial)
      for (int64_t i = 0; i < n; ++i) d[i] = bf16(float(src[i]));
      break;
    }
    case DType::I32: {
      auto* d = static_cast<int32_t*>(dst);
#pragma omp parallel for schedule(static) if (n > kSerial)
      for (int64_t i = 0; i < n; ++i) d[i] = int32_t(src[i]);
      break;
    }
  }
}

template <class T>
Tensor from_host(const std::vector<T>& values, const Shape& shape, DType dtype, Device device) {
  SPARROW_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
                " values for shape ", shape_str(shape));
  Tensor h = empty(shape, dtype, Device::cpu());
  store_as(h.data_ptr(), dtype, values.data(), static_cast<int64_t>(values.size()));
  return device.is_cpu() ? h : h.detach().to(device);
}

// Element load/store through double: exact for f32, bf16, i32; the identity for f64.
inline double load(const char* base, DType t, int64_t i) {
  switch (t) {
    case DType::F32:
      return reinterpret_cast<const float*>(base)[i];
    case DType::F64:
      return reinterpret_cast<const double*>(base)[i];
    case DType::BF16:
      return float(reinterpret_cast<const bf16*>(base)[i]);
    case DType::I32:
      return reinterpret_cast<const int32_t*>(base)[i];
  }
  return 0;
}
inline void store(char* base, DType t, int64_t i, double v) {
  switch (t) {
    case DType::F32:
      reinterpret_cast<float*>(base)[i] = float(v);
      break;
    case DType::F64:
      reinterpret_cast<double*>(base)[i] = v;
      break;
    case DType::BF16:
      reinterpret_cast<bf16*>(base)[i] = bf16(float(v));
      break;
    case DType::I32:
      reinterpret_cast<int32_t*>(base)[i] = int32_t(v);
      break;
  }
}

}  // namespace

Tensor from_vector(const std::vector<double>& v, const Shape& s, DType t, Device d) { return from_host(v, s, t, d); }
Tensor from_vector(const std::vector<float>& v, const Shape& s, DType t, Device d) { return from_host(v, s, t, d); }
Tensor from_ints(const std::vector<int32_t>& v, const Shape& s, Device d) { return from_host(v, s, DType::I32, d); }

Tensor from_chunks(const Shape& shape, DType dtype, Device device, const std::function<void(double*, int64_t)>& fill) {
  const int64_t n = shape_numel(shape);
  Tensor h = empty(shape, dtype, Device::cpu());
  std::vector<double> chunk(static_cast<size_t>(std::min<int64_t>(n, int64_t{1} << 22)));  // 32 MiB of doubles
  char* dst = static_cast<char*>(h.data_ptr());
  for (int64_t at = 0; at < n; at += static_cast<int64_t>(chunk.size())) {
    const int64_t m = std::min<int64_t>(static_cast<int64_t>(chunk.size()), n - at);
    fill(chunk.data(), m);
    store_as(dst + at * dtype_size(dtype), dtype, chunk.data(), m);
  }
  return device.is_cpu() ? h : h.detach().to(device);
}
Tensor scalar_tensor(double v, DType t, Device d) { return full({}, v, t, d); }

Tensor make_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
  SPARROW_CHECK(shape.size() == strides.size(), "make_view: rank of shape and strides differ");
  int64_t hi = offset;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] > 0) hi += (shape[i] - 1) * strides[i];
  const int64_t cap = static_cast<int64_t>(t.impl().storage->nbytes / dtype_size(t.dtype()));
  SPARROW_CHECK(offset >= 0 && (shape_numel(shape) == 0 || hi < cap), "make_view: view ", shape_str(shape),
                " at offset ", offset, " exceeds its storage of ", cap, " elements");
  auto p = std::make_shared<TensorImpl>();
  p->storage = t.impl().storage;
  p->shape = shape;
  p->strides = strides;
  p->offset = offset;
  p->dtype = t.dtype();
  return Tensor(p);
}

// The host's kernels behind copy_ and accumulate_ (cuda::copy_strided and accumulate_strided are
// in ops/cuda/copy.cu).
namespace cpu {

// Host copy with any strides and dtypes.
void copy_strided(Tensor& dst, const Tensor& src) {
  int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.is_contiguous() && src.is_contiguous() && dst.dtype() == src.dtype()) {
    std::memcpy(dst.data_ptr(), src.data_ptr(), dst.nbytes());
    return;
  }
  char* d = static_cast<char*>(dst.impl().storage->data);
  const char* s = static_cast<const char*>(src.impl().storage->data);
  StridedWalk<2> w(dst.shape(), {&dst.strides(), &src.strides()}, {dst.offset(), src.offset()});
  for (int64_t i = 0; i < n; ++i, w.next()) store(d, dst.dtype(), w.offsets()[0], load(s, src.dtype(), w.offsets()[1]));
}

// dst += src on the host: the ops (the GPU has one fused kernel instead).
void accumulate_strided(Tensor& dst, const Tensor& src) {
  NoGradGuard no_grad;
  add_(dst, src.dtype() == dst.dtype() ? src : cast(src, dst.dtype()));
}

}  // namespace cpu

void copy_(Tensor& dst, const Tensor& src) {
  SPARROW_CHECK(dst.shape() == src.shape(), "copy_: shapes ", shape_str(dst.shape()), " and ", shape_str(src.shape()),
                " differ");
  if (dst.numel() == 0) return;
  const Device dd = dst.device(), sd = src.device();
  if (dd == sd) return SPARROW_DISPATCH(dd, copy_strided, dst, src);  // cast and/or restride in one pass
  // Across devices (a build without CUDA fails in device_memory): make src contiguous where it
  // lives, move the bytes, then cast/restride where dst lives.
  Tensor s = src.is_contiguous() ? src : src.detach().contiguous();
  Tensor staged = (dst.is_contiguous() && dst.dtype() == s.dtype()) ? dst : empty(s.shape(), s.dtype(), dd);
  device_memory::copy(staged.data_ptr(), dd, s.data_ptr(), sd, s.nbytes());
  if (!staged.same(dst)) copy_(dst, staged);
}

void accumulate_(Tensor& dst, const Tensor& src) {
  SPARROW_CHECK(dst.shape() == src.shape() && dst.device() == src.device(), "accumulate_: ", describe(src), " into ",
                describe(dst));
  SPARROW_DISPATCH(dst.device(), accumulate_strided, dst, src);
}

std::string describe(const Tensor& t) {
  return std::string(dtype_name(t.dtype())) + shape_str(t.shape()) + " on " + t.device().str();
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  SPARROW_CHECK(a.device() == b.device(), op, ": inputs on different devices: ", describe(a), " and ", describe(b));
}
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  SPARROW_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", describe(a), " and ", describe(b));
}
void check_float(const char* op, const Tensor& a) {
  SPARROW_CHECK(is_floating(a.dtype()), op, ": needs a floating tensor, got ", describe(a));
}
void check_dim(const char* op, const Tensor& a, int64_t ndim) {
  SPARROW_CHECK(a.dim() == ndim, op, ": expected a ", ndim, "-d tensor, got ", describe(a));
}

}  // namespace sparrow
