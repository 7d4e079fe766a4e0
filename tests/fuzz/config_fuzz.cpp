// Fuzzes the config reader: YAML text (and `--set` overrides) → typed, validated Config.
//
// Input: YAML text. Lines of the form "#set KEY=VALUE" (YAML comments, so the document is
// unchanged by them) are also passed as --set overrides, in order.
// Contract checked: load_config_text either returns a Config or throws ConfigError (any other
// exception, crash or UB is a finding); a Config it returns writes back (to_yaml) to text that
// reads back to the same Config.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "train/config/config.h"

using sparrow::train::Config;
using sparrow::train::ConfigError;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    if (text.compare(pos, 5, "#set ") == 0) overrides.push_back(text.substr(pos + 5, eol - pos - 5));
    pos = eol + 1;
  }
  Config c;
  try {
    c = sparrow::train::load_config_text(text, "fuzz.yaml", overrides);
  } catch (const ConfigError&) {
    return 0;  // rejected with a message: fine
  }
  const std::string out = sparrow::train::to_yaml(c);
  Config back;
  try {
    back = sparrow::train::load_config_text(out, "to_yaml");
  } catch (const ConfigError& e) {
    sparrow::fuzz::finding(std::string("to_yaml wrote a config that does not read back: ") + e.what() + "\n" + out);
  }
  if (!(back == c)) sparrow::fuzz::finding("to_yaml does not round-trip:\n" + out);
  return 0;
}
