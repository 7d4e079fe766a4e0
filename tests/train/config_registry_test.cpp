// A backend registered from outside the library (attn::register_attention) after start-up is a
// valid `attention.backend` value, in the default and in a per-layer override, and written back.
#include <gtest/gtest.h>

#include <string>

#include "attention/attention.h"
#include "attention/backends/dense.h"
#include "train/config/config.h"

using namespace sparrow;

TEST(ConfigRegistry, RegisteredBackendIsAcceptedByName) {
  const std::string yaml =
      "attention:\n  backend: config_test_custom\n  layers:\n    1: {backend: config_test_custom}\n";
  try {
    train::load_config_text(yaml, "cfg.yaml");
    FAIL() << "an unregistered backend was accepted";
  } catch (const train::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("got 'config_test_custom'"), std::string::npos) << e.what();
  }
  attn::register_attention("config_test_custom",
                           [](const attn::AttentionConfig& c) -> std::unique_ptr<attn::Attention> {
                             return std::make_unique<attn::DenseAttention>(c);
                           });
  const train::Config c = train::load_config_text(yaml, "cfg.yaml");
  EXPECT_EQ(c.attention.base.attn.backend, "config_test_custom");
  EXPECT_EQ(c.attention.layer(1).attn.backend, "config_test_custom");
  EXPECT_NE(train::to_yaml(c).find("backend: config_test_custom"), std::string::npos);
  EXPECT_NE(train::config_help().find("config_test_custom"), std::string::npos);
}
