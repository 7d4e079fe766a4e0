// Elementwise, scalar and unary ops on the CPU: values against a direct per-element
// computation, NumPy broadcasting, strided (transposed) inputs and outputs, the in-place ops,
// BF16 rounding, error messages, and every gradient against finite differences in f64. Then on
// every device (ElementwiseOnDevice): the f32 and bf16 kernels (and f64 on the GPU), forward and
// every input's gradient, against the f64 host reference.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "common/devices.h"
#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::gradcheck;
using sparrow::testing::leaf;
using sparrow::testing::rel_error;

namespace {

using Vec = std::vector<double>;

// Row-major index of out shape `o` → row-major index into a shape `s` broadcast to it.
int64_t broadcast_index(int64_t i, const Shape& o, const Shape& s) {
  int64_t idx = 0, mul = 1;
  for (size_t k = 0; k < o.size(); ++k) {
    size_t d = o.size() - 1 - k;
    int64_t c = i % o[d];
    i /= o[d];
    if (k < s.size()) {
      size_t sd = s.size() - 1 - k;
      if (s[sd] != 1) idx += c * mul;
      mul *= s[sd];
    }
  }
  return idx;
}

// Reference binary op via per-element broadcasting.
Vec reference(const Tensor& a, const Tensor& b, const std::function<double(double, double)>& f) {
  Shape o = broadcast_shapes(a.shape(), b.shape(), "test");
  Vec av = a.to_vector(), bv = b.to_vector(), r(static_cast<size_t>(shape_numel(o)));
  for (int64_t i = 0; i < shape_numel(o); ++i)
    r[i] = f(av[broadcast_index(i, o, a.shape())], bv[broadcast_index(i, o, b.shape())]);
  return r;
}

void expect_near(const Vec& got, const Vec& want, double rtol, double atol = 0) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], atol + rtol * std::abs(want[i])) << "element " << i;
}

// Leaf with values in [lo, hi] (for log, sqrt and fractional powers).
Tensor positive_leaf(const Shape& s, Generator& g, double lo = 0.5, double hi = 2.0) {
  Tensor t = rand_uniform(s, g, lo, hi, DType::F64);
  t.requires_grad_(true);
  return t;
}

double gelu_ref(double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }
double silu_ref(double x) { return x / (1 + std::exp(-x)); }

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> ref;
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](double x, double y) { return x + y; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, [](double x, double y) { return x - y; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, [](double x, double y) { return x * y; }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, [](double x, double y) { return x / y; }},
  };
}

// Shape pairs: same shape, the brief's [3,1,4]+[2,1], a scalar, rank-0, and broadcasting on both sides.
const std::vector<std::pair<Shape, Shape>> kShapePairs = {
    {{2, 3}, {2, 3}}, {{3, 1, 4}, {2, 1}}, {{2, 3}, {1}}, {{}, {2, 2}}, {{4, 1}, {1, 5}}, {{2, 3, 4}, {4}},
};

}  // namespace

TEST(Elementwise, BinaryValuesWithBroadcasting) {
  Generator g(1);
  for (const auto& c : binary_cases())
    for (const auto& [sa, sb] : kShapePairs) {
      Tensor a = randn(sa, g, DType::F64);
      Tensor b = rand_uniform(sb, g, 0.5, 2.0, DType::F64);  // nonzero for div
      Tensor out = c.op(a, b);
      EXPECT_EQ(out.shape(), broadcast_shapes(sa, sb, "test")) << c.name;
      expect_near(out.to_vector(), reference(a, b, c.ref), 1e-15);
      // Operands swapped: the broadcast goes the other way.
      expect_near(c.op(b, a).to_vector(), reference(b, a, c.ref), 1e-15);
    }
}

TEST(Elementwise, BinaryF32LargeContiguousAndStrided) {
  // Large enough for the OpenMP path; the transposed operand takes the strided path.
  Generator g(2);
  Tensor a = randn({300, 400}, g), b = randn({300, 400}, g), bt = randn({400, 300}, g).transpose(0, 1);
  ASSERT_FALSE(bt.is_contiguous());
  for (const auto& c : binary_cases()) {
    if (std::string(c.name) == "div") continue;
    expect_near(c.op(a, b).to_vector(), reference(a, b, c.ref), 1e-6, 1e-6);
    expect_near(c.op(a, bt).to_vector(), reference(a, bt.contiguous(), c.ref), 1e-6, 1e-6);
    expect_near(c.op(bt, a).to_vector(), reference(bt.contiguous(), a, c.ref), 1e-6, 1e-6);
  }
  Tensor bias = randn({400}, g);
  expect_near(add(a, bias).to_vector(), reference(a, bias, [](double x, double y) { return x + y; }), 1e-6, 1e-6);
}

TEST(Elementwise, BinaryGradients) {
  Generator g(3);
  for (const auto& c : binary_cases())
    for (const auto& [sa, sb] : kShapePairs) {
      Tensor a = leaf(sa, g);
      Tensor b = positive_leaf(sb, g);
      EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return c.op(x[0], x[1]); }, {a, b}))
          << c.name << " " << shape_str(sa) << " " << shape_str(sb);
      EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return c.op(x[1], x[0]); }, {a, b}))
          << c.name << " swapped " << shape_str(sa) << " " << shape_str(sb);
    }
}

TEST(Elementwise, BinaryGradientsThroughTransposedInput) {
  Generator g(4);
  for (const auto& c : binary_cases()) {
    Tensor a = leaf({4, 3}, g), b = positive_leaf({3, 4}, g), bias = positive_leaf({4}, g);
    EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return c.op(x[0].transpose(0, 1), x[1]); }, {a, b}))
        << c.name;
    EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return c.op(x[0].transpose(0, 1), x[1]); }, {a, bias}))
        << c.name << " with a broadcast row";
  }
}

TEST(Elementwise, SameInputTwiceAccumulates) {
  Generator g(5);
  Tensor a = leaf({3, 2}, g);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& x) { return mul(x[0], x[0]); }, {a}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& x) { return add(mul(x[0], x[0]), x[0]); }, {a}));
}

TEST(Elementwise, OnlyOneInputRequiresGrad) {
  Generator g(6);
  Tensor a = leaf({2, 3}, g);
  Tensor b = randn({3}, g, DType::F64);
  EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return mul(x[0], b); }, {a}));
  EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return div(b, add_scalar(mul(x[0], x[0]), 1.0)); }, {a}));
}

TEST(Elementwise, ErrorsNameTheOpAndShapes) {
  Tensor a = zeros({2, 3}), b = zeros({4});
  try {
    add(a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(mul(zeros({2}), zeros({2}, DType::F64)), Error);
  EXPECT_THROW(add(from_ints({1, 2}, {2}), from_ints({1, 2}, {2})), Error);
  EXPECT_THROW(exp(from_ints({1}, {1})), Error);
  Tensor c = zeros({2, 3});
  EXPECT_THROW(add_(c, zeros({3, 3})), Error);
  Tensor small = zeros({3});
  EXPECT_THROW(add_(small, zeros({2, 3})), Error);  // would need to grow the destination
}

TEST(Elementwise, InPlaceAddBroadcastsAndWritesViews) {
  Tensor a = from_vector(Vec{1, 2, 3, 4, 5, 6}, {2, 3}, DType::F64);
  add_(a, from_vector(Vec{10, 20, 30}, {3}, DType::F64));
  EXPECT_EQ(a.to_vector(), (Vec{11, 22, 33, 14, 25, 36}));
  // Into a transposed view: element (i, j) of the view is a[j, i].
  Tensor t = a.transpose(0, 1);  // [3, 2]
  add_(t, from_vector(Vec{100, 200}, {2}, DType::F64));
  EXPECT_EQ(a.to_vector(), (Vec{111, 122, 133, 214, 225, 236}));
  mul_(t, 0.5);
  EXPECT_EQ(a.to_vector(), (Vec{55.5, 61, 66.5, 107, 112.5, 118}));
  // f32, large, contiguous: the parallel path.
  Tensor x = full({100000}, 1.5), y = full({100000}, 2.0);
  add_(x, y);
  mul_(x, 2.0);
  for (double v : x.to_vector()) ASSERT_EQ(v, 7.0);
}

TEST(Elementwise, InPlaceOnRecordedResultThrows) {
  Generator g(7);
  Tensor a = leaf({3}, g);
  Tensor b = mul_scalar(a, 2.0);
  EXPECT_THROW(add_(b, a.detach()), Error);
  EXPECT_THROW(mul_(b, 2.0), Error);
  NoGradGuard ng;
  add_(b, a.detach());  // allowed where nothing is recorded
}

TEST(Elementwise, FillEveryDtypeAndViews) {
  Tensor i = from_ints({1, 2, 3, 4}, {2, 2});
  fill_(i, 7.9);
  EXPECT_EQ(i.to_vector(), (Vec{7, 7, 7, 7}));
  for (DType t : {DType::F32, DType::F64, DType::BF16}) {
    Tensor f = zeros({3, 4}, t);
    Tensor col = f.slice(1, 1, 2);  // a strided column view
    fill_(col, -2.5);
    Vec v = f.to_vector();
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) EXPECT_EQ(v[r * 4 + c], c == 1 ? -2.5 : 0.0) << dtype_name(t);
  }
  Tensor big = empty({70000}, DType::F32);
  fill_(big, 3.0);
  for (double v : big.to_vector()) ASSERT_EQ(v, 3.0);
  EXPECT_EQ(full({}, 4.0).item(), 4.0);
}

namespace {
struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  bool positive;  // domain needs x > 0
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"add_scalar", [](const Tensor& a) { return add_scalar(a, 1.25); }, [](double x) { return x + 1.25; }, false},
      {"mul_scalar", [](const Tensor& a) { return mul_scalar(a, -3.0); }, [](double x) { return -3 * x; }, false},
      {"pow 2", [](const Tensor& a) { return pow_scalar(a, 2.0); }, [](double x) { return x * x; }, false},
      {"pow 3", [](const Tensor& a) { return pow_scalar(a, 3.0); }, [](double x) { return x * x * x; }, false},
      {"pow -1", [](const Tensor& a) { return pow_scalar(a, -1.0); }, [](double x) { return 1 / x; }, true},
      {"pow 0.5", [](const Tensor& a) { return pow_scalar(a, 0.5); }, [](double x) { return std::sqrt(x); }, true},
      {"pow 1.7", [](const Tensor& a) { return pow_scalar(a, 1.7); }, [](double x) { return std::pow(x, 1.7); }, true},
      {"pow -2.5", [](const Tensor& a) { return pow_scalar(a, -2.5); }, [](double x) { return std::pow(x, -2.5); },
       true},
      {"pow 1", [](const Tensor& a) { return pow_scalar(a, 1.0); }, [](double x) { return x; }, false},
      {"pow 0", [](const Tensor& a) { return pow_scalar(a, 0.0); }, [](double) { return 1.0; }, false},
      {"neg", [](const Tensor& a) { return neg(a); }, [](double x) { return -x; }, false},
      {"exp", [](const Tensor& a) { return exp(a); }, [](double x) { return std::exp(x); }, false},
      {"log", [](const Tensor& a) { return log(a); }, [](double x) { return std::log(x); }, true},
      {"tanh", [](const Tensor& a) { return tanh(a); }, [](double x) { return std::tanh(x); }, false},
      {"sqrt", [](const Tensor& a) { return sqrt(a); }, [](double x) { return std::sqrt(x); }, true},
      {"gelu", [](const Tensor& a) { return gelu(a); }, gelu_ref, false},
      {"silu", [](const Tensor& a) { return silu(a); }, silu_ref, false},
  };
}

Vec map_ref(const Tensor& a, const std::function<double(double)>& f) {
  Vec v = a.to_vector();
  for (double& x : v) x = f(x);
  return v;
}
}  // namespace

TEST(Unary, ValuesF64AndF32) {
  Generator g(8);
  for (const auto& c : unary_cases()) {
    Tensor a =
        c.positive ? rand_uniform({5, 7}, g, 0.1, 3.0, DType::F64) : randn({5, 7}, g, DType::F64, Device::cpu(), 2.0);
    expect_near(c.op(a).to_vector(), map_ref(a, c.ref), 1e-14, 1e-300);
    Tensor af = a.to(DType::F32);
    Tensor of = c.op(af);
    EXPECT_EQ(of.dtype(), DType::F32);
    expect_near(of.to_vector(), map_ref(af, c.ref), 2e-6, 1e-6);
    // Transposed input: the strided path.
    Tensor at = a.transpose(0, 1);
    expect_near(c.op(at).to_vector(), map_ref(at, c.ref), 1e-14, 1e-300);
  }
}

TEST(Unary, Bf16ComputesInF32AndRoundsOnStore) {
  Generator g(9);
  for (const auto& c : unary_cases()) {
    Tensor a = c.positive ? rand_uniform({64}, g, 0.1, 3.0, DType::BF16) : randn({64}, g, DType::BF16);
    Tensor out = c.op(a);
    EXPECT_EQ(out.dtype(), DType::BF16);
    Vec want = map_ref(a, c.ref);  // a's bf16 values, exactly
    Vec got = out.to_vector();
    for (size_t i = 0; i < got.size(); ++i) {
      // One bf16 rounding of the f32 result: within 2^-8 relative.
      ASSERT_NEAR(got[i], want[i], std::abs(want[i]) * (1.0 / 256) + 1e-30) << c.name << " at " << i;
    }
  }
  Tensor x = from_vector(Vec{1.0, 2.0}, {2}, DType::BF16), y = from_vector(Vec{0.00390625, 3.0}, {2}, DType::BF16);
  // 1 + 2^-8 is a tie between bf16 neighbours and rounds to even (1.0): the sum was computed in
  // f32 and rounded once.
  EXPECT_EQ(add(x, y).to_vector(), (Vec{1.0, 5.0}));
}

TEST(Unary, GeluIsTheTanhApproximation) {
  // Known values of GPT-2's gelu (the tanh form), which differ from the erf form at 1e-4.
  Tensor x = from_vector(Vec{-3.0, -1.0, 0.0, 0.5, 1.0, 2.0}, {6}, DType::F64);
  expect_near(gelu(x).to_vector(),
              Vec{-0.0036373920817729943, -0.15880800939172324, 0.0, 0.34571400982514394, 0.8411919906082768,
                  1.954597694087775},
              1e-12, 1e-15);
}

// Contiguous f32 GELU runs the SIMD path (ops/cpu/gelu_f32.cpp: Eigen's tanh), forward and
// backward: against the formulas in double over the whole useful range, across OpenMP pieces
// and an odd tail, and a strided input on the generic path gives the same values (its 1 + tanh u
// loses its digits in f32 for x ≲ −5: hence the 1e-7 absolute floor).
TEST(Unary, GeluF32VectorisedMatchesTheFormulaInDouble) {
  const int64_t n = 100003;
  std::vector<double> xs(n), gs(n);
  for (int64_t i = 0; i < n; ++i) {
    xs[i] = -12.0 + 24.0 * static_cast<double>(i) / static_cast<double>(n - 1);
    gs[i] = std::cos(0.37 * static_cast<double>(i));
  }
  Tensor x = from_vector(xs, {n}), g = from_vector(gs, {n});
  const Vec xf = x.to_vector(), gf = g.to_vector();  // the f32-rounded inputs
  Vec want_y(n), want_dx(n);
  for (int64_t i = 0; i < n; ++i) {
    const double v = xf[i], k = std::sqrt(2 / M_PI), c = 0.044715, t = std::tanh(k * (v + c * v * v * v));
    want_y[i] = 0.5 * v * (1 + t);
    want_dx[i] = gf[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * c * v * v));
  }
  expect_near(gelu(x).to_vector(), want_y, 2e-6, 1e-7);
  Tensor xg = x.detach();
  xg.requires_grad_(true);
  Tensor y = gelu(xg);
  y.backward(g);
  expect_near(xg.grad().to_vector(), want_dx, 2e-6, 1e-7);
  // The generic loop (a strided view) agrees with the SIMD path.
  Tensor x2 = from_vector(xs, {n, 1}).transpose(0, 1);
  expect_near(gelu(x2).reshape({n}).to_vector(), want_y, 2e-6, 1e-7);
}

TEST(Unary, Gradients) {
  Generator g(10);
  for (const auto& c : unary_cases()) {
    Tensor a = c.positive ? positive_leaf({3, 4}, g) : leaf({3, 4}, g);
    EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return c.op(x[0]); }, {a})) << c.name;
    // Transposed (non-contiguous) input.
    EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return c.op(x[0].transpose(0, 1)); }, {a}))
        << c.name << " transposed";
  }
  // Integer powers of negative bases.
  Tensor n = from_vector(Vec{-1.5, -0.7, 0.3, 2.0}, {4}, DType::F64);
  n.requires_grad_(true);
  for (double p : {2.0, 3.0, -1.0, 4.0})
    EXPECT_TRUE(gradcheck([p](const std::vector<Tensor>& x) { return pow_scalar(x[0], p); }, {n})) << "pow " << p;
  // A chain: the fused tanh/gelu/silu backward kernels receive non-contiguous gradients.
  Tensor b = leaf({4, 3}, g);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& x) { return gelu(silu(tanh(x[0])).transpose(0, 1)); }, {b}));
}

TEST(Unary, NoRecordUnderNoGrad) {
  Generator g(11);
  Tensor a = leaf({3}, g);
  NoGradGuard ng;
  Tensor y = gelu(add(a, a));
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(y.is_leaf());
}

// ---- on every device: the f32 and bf16 kernels against the f64 host reference --------------------
namespace {

using sparrow::testing::DeviceTest;
using sparrow::testing::expect_matches_f64;
using sparrow::testing::float_dtypes;

class ElementwiseOnDevice : public DeviceTest {};

using sparrow::testing::elementwise_tolerance;

}  // namespace

TEST_P(ElementwiseOnDevice, BinaryOps) {
  const Device d = device();
  Generator gen(1);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 1, 4}, {2, 1}}, {{64, 256}, {256}}, {{1000, 513}, {1000, 513}}, {{5, 7}, {}}, {{1, 300}, {200, 1}}};
  for (DType dt : float_dtypes(d))
    for (const auto& c : binary_cases())
      for (const auto& [sa, sb] : shapes) {
        Tensor a = randn(sa, gen, DType::F64), b = rand_uniform(sb, gen, 0.5, 2.0, DType::F64);
        expect_matches_f64(
            std::string(c.name) + " " + shape_str(sa) + " " + shape_str(sb),
            [&op = c.op](const std::vector<Tensor>& x) { return op(x[0], x[1]); }, {a, b}, d, dt,
            elementwise_tolerance(dt));
      }
  // A transposed operand.
  for (const auto& c : binary_cases()) {
    Tensor a = randn({40, 30}, gen, DType::F64), b = rand_uniform({30, 40}, gen, 0.5, 2.0, DType::F64);
    expect_matches_f64(
        std::string(c.name) + " transposed",
        [&op = c.op](const std::vector<Tensor>& x) { return op(x[0].transpose(0, 1), x[1]); }, {a, b}, d, DType::F32,
        elementwise_tolerance(DType::F32));
  }
  // Mixing devices is an error, not a silent copy.
  if (d.is_cuda()) {
    EXPECT_THROW(add(zeros({2}), zeros({2}, DType::F32, d)), Error);
  }
}

TEST_P(ElementwiseOnDevice, UnaryOps) {
  const Device d = device();
  Generator gen(2);
  for (DType dt : float_dtypes(d))
    for (const auto& c : unary_cases()) {
      Tensor a = c.positive ? rand_uniform({257, 129}, gen, 0.2, 3.0, DType::F64) : randn({257, 129}, gen, DType::F64);
      expect_matches_f64(
          c.name, [&op = c.op](const std::vector<Tensor>& x) { return op(x[0]); }, {a}, d, dt,
          elementwise_tolerance(dt));
      expect_matches_f64(
          std::string(c.name) + " transposed",
          [&op = c.op](const std::vector<Tensor>& x) { return op(x[0].transpose(0, 1)); }, {a}, d, dt,
          elementwise_tolerance(dt));
    }
}

TEST_P(ElementwiseOnDevice, InPlaceOpsAndFill) {
  const Device d = device();
  Generator gen(5);
  for (DType dt : float_dtypes(d)) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor a = randn({300, 200}, gen, DType::F64), b = randn({200}, gen, DType::F64), c = randn({300}, gen, DType::F64);
    Tensor x = a.to(dt).to(d), want = a.to(dt).to(DType::F64);
    add_(x, b.to(dt).to(d));
    add_(want, b.to(dt).to(DType::F64));
    EXPECT_LE(rel_error(x, want), elementwise_tolerance(dt));
    mul_(x, -0.5);
    mul_(want, -0.5);
    EXPECT_LE(rel_error(x, want), elementwise_tolerance(dt));
    // In place through a transposed view.
    Tensor xt = x.transpose(0, 1), wt = want.transpose(0, 1);
    add_(xt, c.to(dt).to(d));
    add_(wt, c.to(dt).to(DType::F64));
    EXPECT_LE(rel_error(x, want), elementwise_tolerance(dt));
  }
  for (DType dt : {DType::F32, DType::F64, DType::BF16, DType::I32}) {
    Tensor z = zeros({5, 6}, dt, d);
    Tensor col = z.slice(1, 2, 4);
    fill_(col, 3.0);
    std::vector<double> v = z.to_vector();
    for (int r = 0; r < 5; ++r)
      for (int k = 0; k < 6; ++k) EXPECT_EQ(v[r * 6 + k], (k == 2 || k == 3) ? 3.0 : 0.0) << dtype_name(dt);
  }
  EXPECT_EQ(full({}, 2.5, DType::F32, d).item(), 2.5);
}

SPARROW_DEVICE_TESTS(ElementwiseOnDevice);
