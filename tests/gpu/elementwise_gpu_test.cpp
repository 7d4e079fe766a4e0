// Elementwise, unary and reduction ops: CUDA against the CPU, forward and every input's
// gradient; f32 within 1e-5 relative, bf16 within bf16 tolerance. Covers broadcasting, strided
// (transposed) inputs, the in-place ops, and each reduction kernel path (rows, short rows,
// columns, split rows and split columns).
#include <gtest/gtest.h>

#include <functional>

#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::rel_error;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

Tensor to_gpu(const Tensor& t) {
  Tensor g = empty(t.shape(), t.dtype(), Device::cuda(0));
  copy_(g, t);
  return g;
}

double tolerance(DType t) { return t == DType::BF16 ? 2e-2 : 1e-5; }

// Runs f on CPU leaves and on their GPU copies, then backward of Σ f·W on both; compares the
// outputs and every input's gradient.
void compare(const std::string& what, const Fn& f, const std::vector<Tensor>& cpu_inputs) {
  std::vector<Tensor> c, g;
  for (const Tensor& t : cpu_inputs) {
    Tensor a = t.detach().clone();
    Tensor b = to_gpu(t);
    a.requires_grad_(true);
    b.requires_grad_(true);
    c.push_back(a);
    g.push_back(b);
  }
  Tensor oc = f(c), og = f(g);
  ASSERT_TRUE(og.is_cuda()) << what;
  ASSERT_EQ(oc.shape(), og.shape()) << what;
  const DType dt = oc.dtype();
  EXPECT_LE(rel_error(og, oc), tolerance(dt)) << what << ": forward";
  Generator wg(99);
  Tensor w = randn(oc.shape(), wg, dt);
  sum(mul(oc, w)).backward();
  sum(mul(og, to_gpu(w))).backward();
  for (size_t k = 0; k < c.size(); ++k) {
    ASSERT_TRUE(g[k].grad().defined()) << what << ": input " << k << " got no gradient on the GPU";
    EXPECT_TRUE(g[k].grad().is_cuda());
    EXPECT_LE(rel_error(g[k].grad(), c[k].grad()), tolerance(dt)) << what << ": gradient of input " << k;
  }
}

const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&, const Tensor&)>>> kBinary = {
    {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
    {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
    {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
    {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
};

const std::vector<std::tuple<const char*, std::function<Tensor(const Tensor&)>, bool>> kUnary = {
    {"add_scalar", [](const Tensor& a) { return add_scalar(a, 0.75); }, false},
    {"mul_scalar", [](const Tensor& a) { return mul_scalar(a, -1.5); }, false},
    {"pow 2", [](const Tensor& a) { return pow_scalar(a, 2.0); }, false},
    {"pow 3", [](const Tensor& a) { return pow_scalar(a, 3.0); }, false},
    {"pow -1", [](const Tensor& a) { return pow_scalar(a, -1.0); }, true},
    {"pow 0.5", [](const Tensor& a) { return pow_scalar(a, 0.5); }, true},
    {"pow 1.7", [](const Tensor& a) { return pow_scalar(a, 1.7); }, true},
    {"neg", [](const Tensor& a) { return neg(a); }, false},
    {"exp", [](const Tensor& a) { return exp(a); }, false},
    {"log", [](const Tensor& a) { return log(a); }, true},
    {"tanh", [](const Tensor& a) { return tanh(a); }, false},
    {"sqrt", [](const Tensor& a) { return sqrt(a); }, true},
    {"gelu", [](const Tensor& a) { return gelu(a); }, false},
    {"silu", [](const Tensor& a) { return silu(a); }, false},
};

}  // namespace

TEST(ElementwiseGpu, BinaryOpsMatchCpu) {
  SPARROW_REQUIRE_GPU();
  Generator gen(1);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 1, 4}, {2, 1}}, {{64, 256}, {256}}, {{1000, 513}, {1000, 513}}, {{5, 7}, {}}, {{1, 300}, {200, 1}}};
  for (DType dt : {DType::F32, DType::BF16})
    for (const auto& [name, op] : kBinary)
      for (const auto& [sa, sb] : shapes) {
        Tensor a = randn(sa, gen, dt), b = rand_uniform(sb, gen, 0.5, 2.0, dt);
        compare(std::string(name) + " " + dtype_name(dt) + " " + shape_str(sa) + " " + shape_str(sb),
                [&op = op](const std::vector<Tensor>& x) { return op(x[0], x[1]); }, {a, b});
      }
  // A transposed operand.
  for (const auto& [name, op] : kBinary) {
    Tensor a = randn({40, 30}, gen), b = rand_uniform({30, 40}, gen, 0.5, 2.0);
    compare(std::string(name) + " transposed",
            [&op = op](const std::vector<Tensor>& x) { return op(x[0].transpose(0, 1), x[1]); }, {a, b});
  }
}

TEST(ElementwiseGpu, UnaryOpsMatchCpu) {
  SPARROW_REQUIRE_GPU();
  Generator gen(2);
  for (DType dt : {DType::F32, DType::BF16})
    for (const auto& [name, op, positive] : kUnary) {
      Tensor a = positive ? rand_uniform({257, 129}, gen, 0.2, 3.0, dt) : randn({257, 129}, gen, dt);
      compare(std::string(name) + " " + dtype_name(dt), [&op = op](const std::vector<Tensor>& x) { return op(x[0]); },
              {a});
      compare(std::string(name) + " transposed " + dtype_name(dt),
              [&op = op](const std::vector<Tensor>& x) { return op(x[0].transpose(0, 1)); }, {a});
    }
}

TEST(ElementwiseGpu, ReductionsMatchCpu) {
  SPARROW_REQUIRE_GPU();
  Generator gen(3);
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
    bool keep;
  };
  const std::vector<Case> cases = {
      {{3, 4, 5}, {}, false},        {{3, 4, 5}, {-1}, true},
      {{3, 4, 5}, {0, 2}, false},    {{1 << 20}, {}, false},  // all dims, split rows
      {{4096, 768}, {0}, false},                              // columns, split
      {{300, 20000}, {0}, false},                             // columns, no split
      {{8, 100000}, {1}, false},                              // few long rows, split
      {{2048, 768}, {1}, false},                              // many rows
      {{100000, 4}, {1}, true},                               // short rows
      {{16, 64, 32}, {0, 1}, false},                          // columns over two reduced dims
  };
  for (DType dt : {DType::F32, DType::BF16})
    for (const Case& c : cases) {
      Tensor a = rand_uniform(c.shape, gen, -1.0, 2.0, dt);
      const std::string tag = shape_str(c.shape) + " " + dtype_name(dt);
      compare("sum " + tag, [&c](const std::vector<Tensor>& x) { return sum(x[0], c.dims, c.keep); }, {a});
      compare("mean " + tag, [&c](const std::vector<Tensor>& x) { return mean(x[0], c.dims, c.keep); }, {a});
    }
  // Permuted input: strided reduced and kept spaces.
  Tensor p = randn({6, 7, 8}, gen);
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{}, {0}, {1}, {2}, {0, 2}})
    compare("sum permuted", [&dims](const std::vector<Tensor>& x) { return sum(x[0].permute({2, 0, 1}), dims); }, {p});
}

TEST(ElementwiseGpu, MaxAndSumToMatchCpu) {
  SPARROW_REQUIRE_GPU();
  Generator gen(4);
  for (DType dt : {DType::F32, DType::BF16}) {
    Tensor a = randn({33, 70, 9}, gen, dt);
    for (int64_t d : {0, 1, 2, -1})
      for (bool keep : {false, true}) {
        compare("max dim " + std::to_string(d) + " " + dtype_name(dt),
                [d, keep](const std::vector<Tensor>& x) { return max(x[0], d, keep); }, {a});
        compare("max permuted dim " + std::to_string(d),
                [d, keep](const std::vector<Tensor>& x) {
                  return max(x[0].permute({1, 2, 0}), d, keep);
                },
                {a});
      }
    Tensor b = randn({4, 3, 1000}, gen, dt);
    for (const Shape& s : {Shape{1000}, Shape{3, 1}, Shape{}, Shape{4, 1, 1}, Shape{1, 3, 1000}})
      compare("sum_to " + shape_str(s), [&s](const std::vector<Tensor>& x) { return sum_to(x[0], s); }, {b});
  }
  // Ties and NaN behave as on the CPU.
  Tensor t = from_vector(std::vector<double>{2, 7, 7, 1, NAN, 3}, {2, 3}, DType::F32);
  Tensor m = max(to_gpu(t), 1);
  std::vector<double> mv = m.to_vector();
  EXPECT_EQ(mv[0], 7.0);
  EXPECT_TRUE(std::isnan(mv[1]));
  Tensor l = to_gpu(from_vector(std::vector<double>{2, 7, 7, 1}, {4}, DType::F32));
  l.requires_grad_(true);
  max(l, 0).backward();
  EXPECT_EQ(l.grad().to_vector(), (std::vector<double>{0, 1, 0, 0}));
}

TEST(ElementwiseGpu, InPlaceOpsAndFill) {
  SPARROW_REQUIRE_GPU();
  Generator gen(5);
  for (DType dt : {DType::F32, DType::BF16, DType::F64}) {
    Tensor a = randn({300, 200}, gen, dt), b = randn({200}, gen, dt);
    Tensor ga = to_gpu(a);
    add_(a, b);
    add_(ga, to_gpu(b));
    EXPECT_LE(rel_error(ga, a), tolerance(dt));
    mul_(a, -0.5);
    mul_(ga, -0.5);
    EXPECT_LE(rel_error(ga, a), tolerance(dt));
    // In place through a transposed view.
    Tensor at = a.transpose(0, 1), gat = ga.transpose(0, 1);
    Tensor c = randn({300}, gen, dt);
    add_(at, c);
    add_(gat, to_gpu(c));
    EXPECT_LE(rel_error(ga, a), tolerance(dt));
  }
  for (DType dt : {DType::F32, DType::F64, DType::BF16, DType::I32}) {
    Tensor z = zeros({5, 6}, dt, Device::cuda(0));
    Tensor col = z.slice(1, 2, 4);
    fill_(col, 3.0);
    std::vector<double> v = z.to_vector();
    for (int r = 0; r < 5; ++r)
      for (int k = 0; k < 6; ++k) EXPECT_EQ(v[r * 6 + k], (k == 2 || k == 3) ? 3.0 : 0.0) << dtype_name(dt);
  }
  EXPECT_EQ(full({}, 2.5, DType::F32, Device::cuda(0)).item(), 2.5);
  // Mixing devices is an error, not a silent copy.
  EXPECT_THROW(add(zeros({2}), zeros({2}, DType::F32, Device::cuda(0))), Error);
}
