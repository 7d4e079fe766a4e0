// Hostile and mistaken config input gets one clear line, never a crash or a silent default:
// files that are not configs (devices, directories, unreadable, empty, oversized), repeated
// keys, extra YAML documents, non-finite numbers (YAML's .inf/.nan spellings included) for
// every numeric key, integers past 2^31 - 1, and degenerate optimiser and model values.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "train/config/config.h"
#include "train/config/schema.h"

namespace fs = std::filesystem;
using namespace sparrow::train;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string text_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return error_of([&] { load_config_text(yaml, "cfg.yaml", overrides); });
}

std::string set_error(const std::string& spec) {
  return error_of([&] { load_config("", {spec}); });
}

// A file in a fresh per-test folder.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = (fs::temp_directory_path() /
            ("sparrow_cfg_" + std::string(info->name()) + "_" + std::to_string(::getpid()) + ".yaml"))
               .string();
    std::ofstream(path) << text;
  }
  ~TempFile() { fs::remove(path); }
};

// Every numeric key of the schema, as dotted paths, split by type.
struct NumericKeys {
  std::vector<std::string> doubles, integers;
  std::string prefix;
  template <class T>
  void field(const char* key, T&, const char*) {
    if constexpr (std::is_same_v<T, double>) doubles.push_back(prefix + key);
    if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, std::vector<int64_t>>)
      integers.push_back(prefix + key);
  }
  void choice(const char*, std::string&, const std::vector<std::string>&, const char*) {}
  void choice_list(const char*, std::vector<std::string>&, const std::vector<std::string>&, const char*) {}
  template <class S>
  void section(const char* key, S& sub, const char*) {
    const std::string outer = prefix;
    prefix += std::string(key) + ".";
    visit_fields(*this, sub);
    prefix = outer;
  }
  void layer_overrides(const char*, AttentionSection&, const char*) {}
};

NumericKeys numeric_keys() {
  NumericKeys keys;
  Config c;
  visit_fields(keys, c);
  return keys;
}

}  // namespace

// ---- files that are not configs --------------------------------------------------------------

TEST(ConfigInput, DeviceFileIsRefusedWithoutReadingIt) {
  // /dev/zero would be read forever (then std::bad_alloc); it is refused at stat.
  EXPECT_EQ(error_of([] { load_config("/dev/zero"); }), "/dev/zero: is not a regular file (a config file must be one)");
}

TEST(ConfigInput, DirectoryIsRefused) {
  const std::string dir = fs::temp_directory_path().string();
  EXPECT_EQ(error_of([&] { load_config(dir); }), dir + ": is a directory, not a config file");
}

TEST(ConfigInput, UnreadableFileIsRefusedNamingTheReason) {
  // /proc/self/mem opens but fails to read at offset 0; before, it ran the defaults silently.
  EXPECT_EQ(error_of([] { load_config("/proc/self/mem"); }),
            "/proc/self/mem: cannot read the config file (Input/output error)");
  EXPECT_EQ(error_of([] { load_config("/nonexistent/cfg.yaml"); }),
            "/nonexistent/cfg.yaml: cannot open the config file (No such file or directory)");
  if (::geteuid() != 0) {  // root reads a file whatever its mode
    TempFile f("train: {steps: 3}\n");
    fs::permissions(f.path, fs::perms::none);
    EXPECT_EQ(error_of([&] { load_config(f.path); }), f.path + ": cannot open the config file (Permission denied)");
  }
}

TEST(ConfigInput, OversizedFileIsRefusedBeforeParsing) {
  TempFile f("train: {steps: 3}\n");
  fs::resize_file(f.path, (16 << 20) + 1);  // sparse: costs no disk
  EXPECT_EQ(error_of([&] { load_config(f.path); }),
            f.path + ": the config file is 16777217 bytes, over the limit of 16 MiB");
}

TEST(ConfigInput, EmptyFileIsAnErrorNotTheDefaults) {
  TempFile empty("");
  const std::string want = ": the config is empty (an empty file is not a run description: give at least one section)";
  EXPECT_EQ(error_of([&] { load_config(empty.path); }), empty.path + want);
  TempFile comments("# only a comment\n\n");
  EXPECT_EQ(error_of([&] { load_config(comments.path); }), comments.path + want);
  EXPECT_EQ(text_error(""), "cfg.yaml" + want);
  // No file at all (train --set ... alone) still means the defaults.
  EXPECT_EQ(load_config(""), Config{});
}

TEST(ConfigInput, SecondYamlDocumentIsAnError) {
  EXPECT_EQ(text_error("train: {steps: 3}\n---\ntrain: {steps: 5}\n"),
            "cfg.yaml:3:1: holds 2 YAML documents (separated by ---); a config is one document");
}

TEST(ConfigInput, InputThatStallsTheYamlParserIsAnError) {
  // A lone ',' makes yaml-cpp 0.7 report documents without reading on: LoadAll grew without bound
  // (found by fuzz_config). It is refused at the place the parser stalls, in a file and in --set.
  EXPECT_EQ(text_error(","), "cfg.yaml:1:1: not valid YAML: the parser cannot read past this point");
  EXPECT_EQ(text_error("train: {steps: 3}\n---\n,\n"),
            "cfg.yaml:3:1: not valid YAML: the parser cannot read past this point");
  EXPECT_EQ(error_of([] { load_config_text("train: {steps: 3}\n", "cfg.yaml", {"train.steps=,"}); }),
            "--set train.steps=,: key 'train.steps' value is not valid YAML: the parser cannot read past this point");
}

// ---- repeated keys ---------------------------------------------------------------------------

TEST(ConfigInput, RepeatedKeyIsAnErrorAtTheRepeat) {
  EXPECT_EQ(text_error("optim:\n  lr: 0.001\n  lr: 0.1\n"),
            "cfg.yaml:3:3: key 'optim.lr' is given twice (first at line 2)");
  EXPECT_EQ(text_error("train: {steps: 3}\nmodel: {n_layers: 2}\ntrain: {steps: 5}\n"),
            "cfg.yaml:3:1: key 'train' is given twice (first at line 1)");
  EXPECT_EQ(text_error("attention:\n  pattern: {window: 1, window: 2}\n"),
            "cfg.yaml:2:24: key 'attention.pattern.window' is given twice (first at line 2)");
  EXPECT_EQ(
      text_error("model: {n_layers: 4}\nattention:\n  layers:\n    1:\n      sparsity: 0.5\n      sparsity: 0.9\n"),
      "cfg.yaml:6:7: key 'attention.layers.1.sparsity' is given twice (first at line 5)");
}

// ---- numbers ---------------------------------------------------------------------------------

TEST(ConfigInput, YamlSpellingsOfInfinityAndNanAreNumbersThatValidationRefuses) {
  for (const char* v : {".inf", ".Inf", ".INF", "+.inf", "inf", "Infinity", "1e999"})
    EXPECT_EQ(text_error(std::string("optim:\n  lr: ") + v + "\n"),
              "cfg.yaml:2:7: key 'optim.lr' must be a finite number, got inf")
        << v;
  for (const char* v : {"-.inf", "-inf", "-1e999"})
    EXPECT_EQ(text_error(std::string("optim:\n  grad_clip: ") + v + "\n"),
              "cfg.yaml:2:14: key 'optim.grad_clip' must be a finite number, got -inf")
        << v;
  for (const char* v : {".nan", ".NaN", ".NAN", "nan"})
    EXPECT_EQ(text_error(std::string("optim:\n  weight_decay: ") + v + "\n"),
              "cfg.yaml:2:17: key 'optim.weight_decay' must be a finite number, got nan")
        << v;
  EXPECT_EQ(text_error("optim:\n  lr: 1e-999\n"), "cfg.yaml:2:7: key 'optim.lr' must be > 0, got 0");
  EXPECT_EQ(text_error("optim:\n  lr: .infinity\n"), "cfg.yaml:2:7: key 'optim.lr' expected a number, got '.infinity'");
}

TEST(ConfigInput, EveryFloatingKeyMustBeFinite) {
  const NumericKeys keys = numeric_keys();
  ASSERT_GE(keys.doubles.size(), 15u);
  for (const std::string& key : keys.doubles) {
    EXPECT_EQ(set_error(key + "=.nan"), "--set " + key + "=.nan: key '" + key + "' must be a finite number, got nan");
    EXPECT_EQ(set_error(key + "=-.inf"),
              "--set " + key + "=-.inf: key '" + key + "' must be a finite number, got -inf");
  }
  // Per-layer overrides are walked too.
  EXPECT_EQ(
      set_error("attention.layers.1.sparsity=.inf"),
      "--set attention.layers.1.sparsity=.inf: key 'attention.layers.1.sparsity' must be a finite number, got inf");
}

TEST(ConfigInput, EveryIntegerKeyIsCappedAt2To31Minus1) {
  const NumericKeys keys = numeric_keys();
  ASSERT_GE(keys.integers.size(), 30u);
  for (const std::string& key : keys.integers)
    EXPECT_EQ(set_error(key + "=9223372036854775807"),
              "--set " + key + "=9223372036854775807: key '" + key +
                  "' must be <= 2147483647 (2^31 - 1, the largest integer a key takes), got 9223372036854775807");
  // The attention pattern values that used to overflow the layout arithmetic, from a file.
  EXPECT_EQ(text_error("attention:\n  pattern: {window: 4611686018427387904}\n"),
            "cfg.yaml:2:21: key 'attention.pattern.window' must be <= 2147483647 (2^31 - 1, the largest integer a key "
            "takes), got 4611686018427387904");
  EXPECT_EQ(text_error("attention:\n  pattern: {dilation_rates: [2, 4611686018427387904]}\n"),
            "cfg.yaml:2:29: key 'attention.pattern.dilation_rates' must be <= 2147483647 (2^31 - 1, the largest "
            "integer a key takes), got 4611686018427387904");
  EXPECT_EQ(load_config("", {"attention.pattern.stride=2147483647"}).attention.base.attn.pattern.stride, 2147483647);
}

TEST(ConfigInput, DegenerateOptimiserValuesAreRefused) {
  EXPECT_EQ(text_error("optim:\n  lr: 1e30\n"), "cfg.yaml:2:7: key 'optim.lr' must be <= 10, got 1e+30");
  EXPECT_EQ(text_error("optim:\n  lr: 0\n"), "cfg.yaml:2:7: key 'optim.lr' must be > 0, got 0");
  EXPECT_EQ(text_error("optim:\n  eps: 0\n"), "cfg.yaml:2:8: key 'optim.eps' must be > 0, got 0");
  EXPECT_EQ(text_error("optim:\n  eps: 2\n"), "cfg.yaml:2:8: key 'optim.eps' must be <= 1, got 2");
  EXPECT_EQ(text_error("optim:\n  weight_decay: -0.1\n"),
            "cfg.yaml:2:17: key 'optim.weight_decay' must be >= 0, got -0.1");
  EXPECT_EQ(text_error("optim:\n  lr: 0.5\n  min_lr: 0\n  weight_decay: 2\n"),
            "cfg.yaml:4:17: key 'optim.weight_decay' times optim.lr (0.5) must be < 1 (each step scales weights by 1 - "
            "lr * weight_decay), got 2");
  EXPECT_EQ(text_error("optim:\n  beta1: 1\n"), "cfg.yaml:2:10: key 'optim.beta1' must be in [0, 1), got 1");
  EXPECT_EQ(text_error("optim:\n  beta2: -0.1\n"), "cfg.yaml:2:10: key 'optim.beta2' must be in [0, 1), got -0.1");
  EXPECT_EQ(text_error("optim:\n  grad_clip: -1\n"), "cfg.yaml:2:14: key 'optim.grad_clip' must be >= 0, got -1");
  // The largest sane values still load.
  Config c = load_config_text("optim: {lr: 10, min_lr: 0, eps: 1, weight_decay: 0.09}\n", "cfg.yaml");
  EXPECT_EQ(c.optim.lr, 10.0);
}

TEST(ConfigInput, DegenerateModelValuesAreRefused) {
  EXPECT_EQ(text_error("model:\n  rope_base: 1\n"), "cfg.yaml:2:14: key 'model.rope_base' must be > 1, got 1");
  EXPECT_EQ(text_error("model:\n  rope_base: 0.5\n"), "cfg.yaml:2:14: key 'model.rope_base' must be > 1, got 0.5");
  EXPECT_EQ(text_error("model:\n  dropout: 1\n"), "cfg.yaml:2:12: key 'model.dropout' must be in [0, 1), got 1");
  EXPECT_EQ(
      text_error("model:\n  mlp_ratio: 1e-9\n"),
      "cfg.yaml:2:14: key 'model.mlp_ratio' gives an MLP hidden width round(mlp_ratio * d_model) = 0, outside [1, "
      "2147483647]");
  EXPECT_EQ(text_error("model:\n  mlp_ratio: 1e12\n"),
            "cfg.yaml:2:14: key 'model.mlp_ratio' gives an MLP hidden width round(mlp_ratio * d_model) = 2.56e+14, "
            "outside [1, 2147483647]");
}
