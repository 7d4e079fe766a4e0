// register_attention: a backend added from outside the library is built by make_attention and
// listed with the built-ins; duplicates, empty names and empty factories are refused with a clear
// error; registration is safe from several threads at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "attention/attention.h"
#include "attention/backends/dense.h"
#include "framework/core/error.h"

using namespace sparrow;
using namespace sparrow::attn;

namespace {

// Dense attention under another name: what a user's backend would wrap.
class RenamedDense : public Attention {
 public:
  explicit RenamedDense(const AttentionConfig& cfg) : inner_(cfg) {}
  Tensor forward(const AttentionCall& call) override { return inner_.forward(call); }
  AttentionStats stats() const override {
    AttentionStats s = inner_.stats();
    s.backend = "registry_test_dense";
    return s;
  }
  std::string name() const override { return "registry_test_dense"; }

 private:
  DenseAttention inner_;
};

AttentionFactory renamed_dense() {
  return [](const AttentionConfig& c) -> std::unique_ptr<Attention> { return std::make_unique<RenamedDense>(c); };
}

bool known(const std::string& name) {
  const auto names = attention_backend_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Registry, RegisteredBackendIsBuiltByName) {
  EXPECT_FALSE(known("registry_test_dense"));
  register_attention("registry_test_dense", renamed_dense());
  EXPECT_TRUE(known("registry_test_dense"));
  EXPECT_EQ(attention_registry().size(), attention_backend_names().size());
  AttentionConfig cfg;
  cfg.backend = "registry_test_dense";
  auto a = make_attention(cfg);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->name(), "registry_test_dense");
  // Built-ins come first, in their order; registered ones follow.
  const auto names = attention_backend_names();
  EXPECT_EQ(names.front(), "dense");
  EXPECT_EQ(names.back(), "registry_test_dense");
}

TEST(Registry, RefusesDuplicatesAndBadEntries) {
  const std::string dup = error_of([] { register_attention("dense", renamed_dense()); });
  EXPECT_NE(dup.find("register_attention: backend 'dense' is already registered (known: dense, block_sparse"),
            std::string::npos)
      << dup;
  register_attention("registry_test_once", renamed_dense());
  EXPECT_NE(error_of([] { register_attention("registry_test_once", renamed_dense()); }).find("already registered"),
            std::string::npos);
  EXPECT_EQ(error_of([] { register_attention("", renamed_dense()); }), "register_attention: the backend name is empty");
  EXPECT_EQ(error_of([] { register_attention("two words", renamed_dense()); }),
            "register_attention: backend name 'two words' holds whitespace");
  EXPECT_EQ(error_of([] { register_attention("registry_test_empty", AttentionFactory{}); }),
            "register_attention: backend 'registry_test_empty' has an empty factory");
  EXPECT_FALSE(known("registry_test_empty"));
  register_attention("registry_test_null", [](const AttentionConfig&) { return std::unique_ptr<Attention>(); });
  AttentionConfig cfg;
  cfg.backend = "registry_test_null";
  EXPECT_EQ(error_of([&] { make_attention(cfg); }),
            "make_attention: the factory of backend 'registry_test_null' returned null");
  cfg.backend = "registry_test_missing";
  EXPECT_NE(error_of([&] { make_attention(cfg); }).find("unknown attention backend 'registry_test_missing'"),
            std::string::npos);
}

TEST(Registry, ConcurrentRegistrationKeepsExactlyOneOfEachName) {
  // 8 threads each try to register the same 16 names while others build backends: every name
  // lands once, and exactly one registration of each succeeds.
  std::atomic<int> succeeded{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 16; ++i) {
        try {
          register_attention("registry_test_race_" + std::to_string(i), renamed_dense());
          ++succeeded;
        } catch (const Error&) {}
        AttentionConfig cfg;
        cfg.backend = "dense";
        EXPECT_NE(make_attention(cfg), nullptr);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(succeeded.load(), 16);
  const auto names = attention_backend_names();
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(std::count(names.begin(), names.end(), "registry_test_race_" + std::to_string(i)), 1) << i;
}
