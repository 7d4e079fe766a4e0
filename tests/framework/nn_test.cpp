// nn: module names and modes, layers, the flat parameter/gradient buffer, safetensors files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/gradcheck.h"
#include "framework/nn/embedding.h"
#include "framework/nn/init.h"
#include "framework/nn/linear.h"
#include "framework/nn/mlp.h"
#include "framework/nn/module.h"
#include "framework/nn/norm.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/nn/safetensors.h"

using namespace sparrow;
namespace fs = std::filesystem;

namespace {

// A small transformer-shaped model: embedding, blocks of (norm, mlp), final norm, head.
struct Block : nn::Module {
  std::shared_ptr<nn::LayerNorm> ln;
  std::shared_ptr<nn::MLP> mlp;
  Block(int64_t d, Generator& g, DType dt) {
    ln = register_module("ln", std::make_shared<nn::LayerNorm>(d, 1e-5, true, dt));
    nn::MLPOptions o;
    o.in = d;
    o.hidden = 2 * d;
    o.dtype = dt;
    mlp = register_module("mlp", std::make_shared<nn::MLP>(o, g));
  }
  Tensor forward(const Tensor& x) const { return add(x, mlp->forward(ln->forward(x))); }
};

struct TinyModel : nn::Module {
  std::shared_ptr<nn::Embedding> wte;
  std::shared_ptr<nn::ModuleList> blocks;
  std::shared_ptr<nn::RMSNorm> norm_f;
  std::shared_ptr<nn::Linear> head;
  Tensor scale;  // an own parameter registered after submodules
  TinyModel(int64_t vocab, int64_t d, int n_blocks, uint64_t seed, DType dt = DType::F32) {
    Generator g(seed);
    wte = register_module("wte", std::make_shared<nn::Embedding>(vocab, d, g, 0.5, dt));
    blocks = register_module("blocks", std::make_shared<nn::ModuleList>());
    for (int i = 0; i < n_blocks; ++i) blocks->push_back(std::make_shared<Block>(d, g, dt));
    norm_f = register_module("norm_f", std::make_shared<nn::RMSNorm>(d, 1e-6, dt));
    head = register_module("head", std::make_shared<nn::Linear>(d, vocab, false, g, dt));
    scale = register_parameter("scale", full({1}, 1.5, dt));
  }
  Tensor forward(const Tensor& ids) const {
    Tensor x = wte->forward(ids);
    for (size_t i = 0; i < blocks->size(); ++i) x = static_cast<const Block&>(*(*blocks)[i]).forward(x);
    return mul(head->forward(norm_f->forward(x)), scale);
  }
  Tensor loss(const Tensor& ids, const Tensor& targets) const {
    Tensor logits = forward(ids);
    return cross_entropy(reshape(logits, {-1, logits.size(-1)}), reshape(targets, {-1}));
  }
};

// A fresh folder per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() / ("sparrow_nn_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::vector<char>& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
}

}  // namespace

// --- Module ------------------------------------------------------------------------------------

TEST(Module, HierarchicalNamesInRegistrationOrder) {
  TinyModel m(11, 4, 2, 1);
  std::vector<std::string> names;
  for (auto& p : m.named_parameters()) names.push_back(p.name);
  const std::vector<std::string> want = {"wte.weight",
                                         "blocks.0.ln.weight",
                                         "blocks.0.ln.bias",
                                         "blocks.0.mlp.fc.weight",
                                         "blocks.0.mlp.fc.bias",
                                         "blocks.0.mlp.proj.weight",
                                         "blocks.0.mlp.proj.bias",
                                         "blocks.1.ln.weight",
                                         "blocks.1.ln.bias",
                                         "blocks.1.mlp.fc.weight",
                                         "blocks.1.mlp.fc.bias",
                                         "blocks.1.mlp.proj.weight",
                                         "blocks.1.mlp.proj.bias",
                                         "norm_f.weight",
                                         "head.weight",
                                         "scale"};
  EXPECT_EQ(names, want);
  EXPECT_TRUE(m.parameter("blocks.1.mlp.fc.weight").same(static_cast<const Block&>(*(*m.blocks)[1]).mlp->fc->weight));
  EXPECT_EQ(m.parameter("blocks.0.mlp.fc.weight").shape(), (Shape{8, 4}));
  EXPECT_EQ(m.num_parameters(), 11 * 4 + 2 * (4 + 4 + 32 + 8 + 32 + 4) + 4 + 44 + 1);
  for (auto& p : m.named_parameters()) EXPECT_TRUE(p.tensor.requires_grad()) << p.name;
  EXPECT_THROW(m.parameter("blocks.2.ln.weight"), Error);
}

TEST(Module, WeightDecayRuleAndFlags) {
  TinyModel m(11, 4, 1, 1);
  std::map<std::string, bool> decay;
  for (auto& p : m.named_parameters()) decay[p.name] = p.weight_decay;
  EXPECT_TRUE(decay["wte.weight"]);
  EXPECT_TRUE(decay["blocks.0.mlp.fc.weight"]);
  EXPECT_TRUE(decay["head.weight"]);
  EXPECT_FALSE(decay["blocks.0.ln.weight"]);
  EXPECT_FALSE(decay["blocks.0.ln.bias"]);
  EXPECT_FALSE(decay["blocks.0.mlp.fc.bias"]);
  EXPECT_FALSE(decay["norm_f.weight"]);
  EXPECT_FALSE(decay["scale"]);  // 1-D
  // The rule alone, for parameters registered with Auto.
  EXPECT_FALSE(nn::weight_decay_by_rule("attn.norm_q.weight", zeros({3, 3})));
  EXPECT_FALSE(nn::weight_decay_by_rule("x.bias", zeros({3, 3})));
  EXPECT_TRUE(nn::weight_decay_by_rule("x.weight", zeros({3, 3})));
  EXPECT_FALSE(nn::weight_decay_by_rule("x.weight", zeros({3})));
}

TEST(Module, TiedWeightsCountOnceAndShareOneSlot) {
  Generator g(1);
  auto emb = std::make_shared<nn::Embedding>(6, 4, g);
  nn::Module tied;  // the output head reads the embedding table (GPT-2's weight tying)
  tied.register_module("wte", emb);
  auto h2 = std::make_shared<nn::Module>();
  h2->register_parameter("weight", emb->weight);
  tied.register_module("head", h2);
  auto params = tied.named_parameters();
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(params[0].name, "wte.weight");
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(tied);
  buf.check_bound();
  // Both uses accumulate into the one gradient slice.
  Tensor ids = from_ints({1, 2}, {2});
  Tensor y = matmul(emb->forward(ids), emb->weight, false, true);  // [2, 6]
  sum(y).backward();
  EXPECT_TRUE(emb->weight.grad().impl().storage == buf.grad().impl().storage);
}

TEST(Module, BadNamesAndModesPropagate) {
  nn::Module m;
  m.register_parameter("w", zeros({2}));
  EXPECT_THROW(m.register_parameter("w", zeros({2})), Error);
  EXPECT_THROW(m.register_parameter("a.b", zeros({2})), Error);
  EXPECT_THROW(m.register_parameter("", zeros({2})), Error);
  Generator g(0);
  EXPECT_THROW(m.register_module("w", std::make_shared<nn::Linear>(2, 2, true, g)), Error);

  TinyModel t(5, 4, 2, 3);
  EXPECT_TRUE(t.is_training());
  t.eval();
  EXPECT_FALSE(t.is_training());
  EXPECT_FALSE((*t.blocks)[1]->is_training());
  EXPECT_FALSE(static_cast<const Block&>(*(*t.blocks)[0]).mlp->fc->is_training());
  t.train();
  EXPECT_TRUE(static_cast<const Block&>(*(*t.blocks)[0]).mlp->proj->is_training());
}

TEST(Module, ToDtypeKeepsHandlesAndValues) {
  TinyModel m(5, 4, 1, 3);
  Tensor w = m.head->weight;
  std::vector<double> before = w.to_vector();
  m.to(DType::F64);
  EXPECT_EQ(w.dtype(), DType::F64);  // the same handle sees the conversion
  EXPECT_TRUE(m.parameter("head.weight").same(w));
  std::vector<double> after = w.to_vector();
  EXPECT_EQ(before, after);  // f32 → f64 is exact
  EXPECT_TRUE(w.requires_grad());
}

// --- layers ---------------------------------------------------------------------------------------

TEST(Layers, LinearMatchesXWtPlusB) {
  Generator g(7);
  nn::Linear lin(3, 2, true, g, DType::F64);
  Tensor x = randn({2, 2, 3}, g, DType::F64);
  std::vector<double> xv = x.to_vector(), w = lin.weight.to_vector(), b = lin.bias.to_vector();
  std::vector<double> y = lin.forward(x).to_vector();
  ASSERT_EQ(y.size(), 8u);
  for (int r = 0; r < 4; ++r)
    for (int o = 0; o < 2; ++o) {
      double want = b[o];
      for (int i = 0; i < 3; ++i) want += xv[r * 3 + i] * w[o * 3 + i];
      EXPECT_NEAR(y[r * 2 + o], want, 1e-12);
    }
  EXPECT_EQ(lin.forward(x).shape(), (Shape{2, 2, 2}));
  EXPECT_THROW(lin.forward(zeros({2, 4}, DType::F64)), Error);
  // U(−1/√3, 1/√3) init.
  for (double v : w) EXPECT_LE(std::abs(v), 1 / std::sqrt(3.0));
}

TEST(Layers, LinearAndMlpGradientsMatchFiniteDifferences) {
  Generator g(9);
  nn::Linear lin(3, 4, true, g, DType::F64);
  Tensor x = sparrow::testing::leaf({2, 3}, g);
  EXPECT_TRUE(sparrow::testing::gradcheck(
      [&](const std::vector<Tensor>& in) {
        // Swap the layer's parameters for the checked leaves.
        nn::rebind(lin.weight, in[1]);
        nn::rebind(lin.bias, in[2]);
        return lin.forward(in[0]);
      },
      {x, lin.weight, lin.bias}));

  for (nn::Activation act : {nn::Activation::GELU, nn::Activation::SiLU}) {
    nn::MLPOptions o;
    o.in = 3;
    o.hidden = 5;
    o.out = 2;
    o.activation = act;
    o.dtype = DType::F64;
    nn::MLP mlp(o, g);
    std::vector<Tensor> inputs = {sparrow::testing::leaf({4, 3}, g)};
    for (Tensor p : mlp.parameters()) inputs.push_back(p);
    EXPECT_TRUE(sparrow::testing::gradcheck([&](const std::vector<Tensor>& in) { return mlp.forward(in[0]); }, inputs));
  }
}

TEST(Layers, NormsAndEmbedding) {
  Generator g(5);
  nn::LayerNorm ln(4, 1e-5, true, DType::F64);
  Tensor x = from_vector(std::vector<double>{1, 2, 3, 4, -1, 0, 1, 2}, {2, 4}, DType::F64);
  std::vector<double> y = ln.forward(x).to_vector();
  // (x − μ)/σ with μ = 2.5, σ² = 1.25 (row 0).
  EXPECT_NEAR(y[0], (1 - 2.5) / std::sqrt(1.25 + 1e-5), 1e-9);
  nn::RMSNorm rms(4, 0.0, DType::F64);
  std::vector<double> r = rms.forward(x).to_vector();
  EXPECT_NEAR(r[3], 4 / std::sqrt((1 + 4 + 9 + 16) / 4.0), 1e-12);
  nn::Embedding emb(10, 3, g, 1.0, DType::F64);
  Tensor e = emb.forward(from_ints({9, 0}, {2}));
  std::vector<double> w = emb.weight.to_vector(), ev = e.to_vector();
  EXPECT_EQ(ev[0], w[27]);
  EXPECT_EQ(ev[5], w[2]);
  EXPECT_THROW(emb.forward(from_ints({10}, {1})), Error);
}

TEST(Layers, MlpDropoutOnlyWhenTraining) {
  Generator g(1), drop(2);
  nn::MLPOptions o;
  o.in = 4;
  o.hidden = 8;
  o.dropout = 0.5;
  o.dropout_gen = &drop;
  nn::MLP mlp(o, g);
  Tensor x = randn({64, 4}, g);
  std::vector<double> train_out = mlp.forward(x).to_vector();
  int zeros_seen = 0;
  for (double v : train_out) zeros_seen += v == 0.0;
  EXPECT_GT(zeros_seen, 40);  // about half of 256
  mlp.eval();
  for (double v : mlp.forward(x).to_vector()) EXPECT_NE(v, 0.0);
  o.dropout_gen = nullptr;
  EXPECT_THROW(nn::MLP(o, g), Error);
}

// --- ParameterBuffer ----------------------------------------------------------------------------

TEST(ParameterBuffer, PacksEveryParameterIntoOneBufferOfViews) {
  TinyModel m(11, 4, 2, 1);
  std::map<std::string, std::vector<double>> before;
  for (auto& p : m.named_parameters()) before[p.name] = p.tensor.to_vector();
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(m);

  const auto& storage = buf.data().impl().storage;
  int64_t total = 0;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (auto& p : m.named_parameters()) {
    const nn::ParameterSlot& s = buf.slot(p.name);
    EXPECT_TRUE(s.param.same(p.tensor)) << p.name;
    EXPECT_EQ(p.tensor.impl().storage, storage) << p.name;  // a view of the one buffer
    EXPECT_TRUE(p.tensor.is_contiguous());
    EXPECT_EQ(p.tensor.offset(), s.offset);
    EXPECT_EQ(s.offset % 16, 0) << "slices start 64-byte aligned";
    EXPECT_EQ(p.tensor.to_vector(), before[p.name]) << "values survive packing: " << p.name;
    // Decaying parameters form the prefix [0, decay_numel).
    if (p.weight_decay)
      EXPECT_LE(s.offset + p.tensor.numel(), buf.decay_numel()) << p.name;
    else
      EXPECT_GE(s.offset, buf.decay_numel()) << p.name;
    ranges.push_back({s.offset, s.offset + p.tensor.numel()});
    total += p.tensor.numel();
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) EXPECT_LE(ranges[i - 1].second, ranges[i].first) << "no overlap";
  EXPECT_GE(buf.numel(), total);
  EXPECT_LT(buf.numel(), total + 16 * static_cast<int64_t>(ranges.size()));

  // Writing the flat buffer is writing the parameters.
  Tensor flat = buf.data();
  fill_(flat, 0.25);
  for (double v : m.head->weight.to_vector()) EXPECT_EQ(v, 0.25);
  // And the named views are views too.
  for (auto& [name, t] : buf.named_parameters()) EXPECT_EQ(t.impl().storage, storage) << name;
}

TEST(ParameterBuffer, GradientsLandInTheFlatBuffer) {
  Tensor ids = from_ints({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor targets = from_ints({2, 3, 4, 5, 6, 0}, {2, 3});
  // Reference: an identical unpacked model, ordinary autograd.
  TinyModel ref(7, 4, 2, 42);
  ref.loss(ids, targets).backward();

  TinyModel m(7, 4, 2, 42);
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(m);
  m.loss(ids, targets).backward();
  buf.check_bound();
  const auto& grad_storage = buf.grad().impl().storage;
  std::vector<double> flat = buf.grad().to_vector();
  for (auto& p : m.named_parameters()) {
    const nn::ParameterSlot& s = buf.slot(p.name);
    ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
    EXPECT_EQ(p.tensor.grad().impl().storage, grad_storage) << p.name;
    std::vector<double> want = ref.parameter(p.name).grad().to_vector();
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_NEAR(flat[s.offset + i], want[i], 1e-6) << p.name << "[" << i << "]";
      if (::testing::Test::HasFailure()) return;
    }
  }
  double nonzero = 0;
  for (double v : flat) nonzero += v != 0.0;
  EXPECT_GT(nonzero, 0);

  // A second backward accumulates in place; zero_grad clears the one buffer.
  m.loss(ids, targets).backward();
  std::vector<double> twice = buf.grad().to_vector();
  for (size_t i = 0; i < flat.size(); ++i) EXPECT_NEAR(twice[i], 2 * flat[i], 1e-5);
  buf.zero_grad();
  for (double v : buf.grad().to_vector()) ASSERT_EQ(v, 0.0);
  for (auto& p : m.named_parameters()) EXPECT_TRUE(p.tensor.grad().defined()) << "views stay attached";
}

TEST(ParameterBuffer, DetectsParametersThatLeftTheBuffer) {
  TinyModel m(7, 4, 1, 1);
  nn::ParameterBuffer buf = nn::ParameterBuffer::pack(m);
  buf.check_bound();
  m.head->weight.zero_grad();  // drops the view: backward would allocate a private gradient
  EXPECT_NE(error_of([&] { buf.check_bound(); }).find("head.weight"), std::string::npos);
  buf.zero_grad();  // re-attaches
  buf.check_bound();
  m.to(DType::F64);  // every parameter now has its own storage
  EXPECT_NE(error_of([&] { buf.check_bound(); }).find("no longer views the flat buffer"), std::string::npos);
}

TEST(ParameterBuffer, SaveLoadRoundTrip) {
  TempDir dir;
  TinyModel a(7, 4, 2, 1), b(7, 4, 2, 2);
  nn::ParameterBuffer ba = nn::ParameterBuffer::pack(a), bb = nn::ParameterBuffer::pack(b);
  ASSERT_NE(a.head->weight.to_vector(), b.head->weight.to_vector());
  ba.save(dir.file("w.safetensors"), {{"step", "12"}});
  bb.load(dir.file("w.safetensors"));
  for (auto& p : a.named_parameters()) EXPECT_EQ(b.parameter(p.name).to_vector(), p.tensor.to_vector()) << p.name;
  // A model of another shape is refused, naming the tensor, and left untouched.
  TinyModel c(7, 6, 2, 3);
  nn::ParameterBuffer bc = nn::ParameterBuffer::pack(c);
  std::vector<double> c_before = bc.data().to_vector();
  std::string msg = error_of([&] { bc.load(dir.file("w.safetensors")); });
  EXPECT_NE(msg.find("w.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("wte.weight"), std::string::npos) << msg;
  EXPECT_EQ(bc.data().to_vector(), c_before);
}

// --- safetensors --------------------------------------------------------------------------------

TEST(Safetensors, RoundTripEveryDtypeAndViews) {
  TempDir dir;
  Generator g(3);
  Tensor f32 = randn({2, 3}, g);
  Tensor f64 = randn({4}, g, DType::F64);
  Tensor b16 = randn({3, 2}, g, DType::BF16);
  Tensor i32 = from_ints({1, -2, 3, 2147483647}, {2, 2});
  Tensor big = randn({3, 4}, g);
  Tensor strided = transpose(big, 0, 1);  // non-contiguous: written in row-major order
  Tensor scalar = scalar_tensor(2.5);
  const std::string path = dir.file("t.safetensors");
  nn::save_safetensors(
      path, {{"a.f32", f32}, {"b.f64", f64}, {"c.bf16", b16}, {"d.i32", i32}, {"e.t", strided}, {"f.scalar", scalar}},
      {{"format", "pt"}, {"step", "7"}});
  nn::SafetensorsContents c = nn::read_safetensors(path);
  EXPECT_EQ(c.metadata.at("step"), "7");
  EXPECT_EQ(c.metadata.at("format"), "pt");
  std::map<std::string, Tensor> got(c.tensors.begin(), c.tensors.end());
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got["a.f32"].dtype(), DType::F32);
  EXPECT_EQ(got["a.f32"].to_vector(), f32.to_vector());
  EXPECT_EQ(got["b.f64"].to_vector(), f64.to_vector());
  EXPECT_EQ(got["c.bf16"].dtype(), DType::BF16);
  EXPECT_EQ(got["c.bf16"].to_vector(), b16.to_vector());
  EXPECT_EQ(got["d.i32"].to_vector(), i32.to_vector());
  EXPECT_EQ(got["e.t"].shape(), (Shape{4, 3}));
  EXPECT_EQ(got["e.t"].to_vector(), strided.to_vector());
  EXPECT_EQ(got["f.scalar"].shape(), Shape{});
  EXPECT_EQ(got["f.scalar"].item(), 2.5);

  // load_safetensors_into a strided destination as well.
  Tensor dst_big = zeros({3, 4});
  Tensor dst_view = transpose(dst_big, 0, 1);
  nn::load_safetensors_into(path, {{"a.f32", zeros({2, 3})},
                                   {"b.f64", zeros({4}, DType::F64)},
                                   {"c.bf16", zeros({3, 2}, DType::BF16)},
                                   {"d.i32", from_ints({0, 0, 0, 0}, {2, 2})},
                                   {"e.t", dst_view},
                                   {"f.scalar", scalar_tensor(0)}});
  EXPECT_EQ(dst_big.to_vector(), big.to_vector());
  // Atomic write leaves no temp file behind.
  int files = 0;
  for (auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(Safetensors, HeaderFollowsTheFormat) {
  TempDir dir;
  Tensor a = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = from_vector(std::vector<double>{-1.5}, {1}, DType::BF16);
  const std::string path = dir.file("h.safetensors");
  nn::save_safetensors(path, {{"a", a}, {"b", b}}, {{"k", "v"}});
  std::vector<char> bytes = read_bytes(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  ASSERT_LE(8 + n, bytes.size());
  EXPECT_EQ((8 + n) % 8, 0u) << "data section 8-byte aligned";
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<int64_t>(n));
  EXPECT_EQ(header[0], '{');
  nlohmann::json h = nlohmann::json::parse(header);
  EXPECT_EQ(h["__metadata__"]["k"], "v");
  EXPECT_EQ(h["a"]["dtype"], "F32");
  EXPECT_EQ(h["a"]["shape"], nlohmann::json({2, 3}));
  EXPECT_EQ(h["a"]["data_offsets"], nlohmann::json({0, 24}));
  EXPECT_EQ(h["b"]["dtype"], "BF16");
  EXPECT_EQ(h["b"]["data_offsets"], nlohmann::json({24, 26}));
  EXPECT_EQ(bytes.size(), 8 + n + 26);
  const char* data = bytes.data() + 8 + n;
  float f[6];
  std::memcpy(f, data, 24);
  EXPECT_EQ(f[5], 6.0f);
  uint16_t bb;
  std::memcpy(&bb, data + 24, 2);
  EXPECT_EQ(bb, bf16(-1.5f).bits);
}

TEST(Safetensors, ErrorsNameTheFileAndTheTensor) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  nn::save_safetensors(path, {{"layer.weight", zeros({2, 3})}, {"layer.bias", zeros({3})}});

  std::string msg = error_of([&] {
    nn::load_safetensors_into(path, {{"layer.weight", zeros({3, 2})}, {"layer.bias", zeros({3})}});
  });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("'layer.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2, 3]"), std::string::npos) << msg;

  msg = error_of([&] {
    nn::load_safetensors_into(path, {{"layer.weight", zeros({2, 3})}, {"layer.gain", zeros({3})}});
  });
  EXPECT_NE(msg.find("'layer.gain' is missing"), std::string::npos) << msg;

  msg = error_of([&] { nn::load_safetensors_into(path, {{"layer.weight", zeros({2, 3})}}); });
  EXPECT_NE(msg.find("'layer.bias' that the model does not have"), std::string::npos) << msg;

  msg = error_of([&] {
    nn::load_safetensors_into(path, {{"layer.weight", zeros({2, 3}, DType::F64)}, {"layer.bias", zeros({3})}});
  });
  EXPECT_NE(msg.find("dtype F32 in the file but F64"), std::string::npos) << msg;

  // Truncated: the last tensor's bytes are cut short.
  std::vector<char> bytes = read_bytes(path);
  const std::string cut = dir.file("cut.safetensors");
  write_bytes(cut, std::vector<char>(bytes.begin(), bytes.end() - 4));
  msg = error_of([&] { nn::read_safetensors(cut); });
  EXPECT_NE(msg.find(cut), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'layer.bias'"), std::string::npos) << msg;
  // Truncated inside the header, and shorter than the length field.
  write_bytes(cut, std::vector<char>(bytes.begin(), bytes.begin() + 20));
  EXPECT_NE(error_of([&] { nn::read_safetensors(cut); }).find("truncated"), std::string::npos);
  write_bytes(cut, std::vector<char>(bytes.begin(), bytes.begin() + 5));
  EXPECT_NE(error_of([&] { nn::read_safetensors(cut); }).find("truncated"), std::string::npos);
  // Garbage header.
  std::vector<char> bad = bytes;
  bad[8] = 'x';
  write_bytes(cut, bad);
  EXPECT_NE(error_of([&] { nn::read_safetensors(cut); }).find("does not start with '{'"), std::string::npos);
  // Missing file.
  EXPECT_NE(error_of([&] { nn::read_safetensors(dir.file("none.safetensors")); }).find("cannot open"),
            std::string::npos);
}

TEST(Safetensors, OverwriteIsAtomicReplace) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  nn::save_safetensors(path, {{"x", full({3}, 1.0)}});
  nn::save_safetensors(path, {{"x", full({3}, 2.0)}});
  EXPECT_EQ(nn::read_safetensors(path).tensors[0].second.to_vector(), (std::vector<double>{2, 2, 2}));
  EXPECT_THROW(nn::save_safetensors(path, {{"x", zeros({1})}, {"x", zeros({1})}}), Error);
  EXPECT_THROW(nn::save_safetensors(dir.file("no/such/dir/w.safetensors"), {{"x", zeros({1})}}), Error);
  EXPECT_EQ(nn::read_safetensors(path).tensors[0].second.to_vector(), (std::vector<double>{2, 2, 2}));
}
