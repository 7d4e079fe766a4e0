// YAML -> Config: walks the schema (schema.h) over a mapping node, converting each present key
// strictly (no silent truncation, no "3.5" for an integer) and rejecting keys the schema lacks.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>

#include "train/config/config_io.h"
#include "train/config/schema.h"

namespace sparrow::train::detail {

std::string Origin::where(const std::string& path, const YAML::Mark& mark) const {
  // An override owns the node at its path and everything below it; a node with no mark was
  // created by an override on the way to a deeper key.
  const std::string* best = nullptr;
  size_t best_len = 0;
  for (const auto& [p, label] : overrides_) {
    bool owns = path == p || path.rfind(p + ".", 0) == 0;
    bool created = mark.line < 0 && p.rfind(path + ".", 0) == 0;
    if ((owns || created) && p.size() >= best_len) {
      best = &label;
      best_len = p.size();
    }
  }
  if (best) return *best;
  if (mark.line < 0) return file_;
  return file_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

std::string Origin::where_set(const std::string& path) const {
  auto it = seen_.find(path);
  return it == seen_.end() ? file_ : it->second;
}

namespace {

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) s += (i ? sep : "") + items[i];
  return s;
}

// "'abc'", "null", "a mapping", "a sequence": what a message says it got.
std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return "'" + n.Scalar() + "'";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a sequence";
    default:
      return "null";
  }
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). YAML text is
// Unicode; yaml-cpp passes other bytes through, but its emitter writes them back as U+FFFD, so
// the run folder's config.yaml would name another path than the one used.
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const unsigned char t = static_cast<unsigned char>(s[i + k]);
      if ((t >> 6) != 0x2) return false;
      cp = (cp << 6) | (t & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

class Reader {
 public:
  Reader(const YAML::Node& node, std::string prefix, Origin& origin)
      : node_(node), prefix_(std::move(prefix)), origin_(origin) {}

  // Reads every schema key of `target` present in the node, then rejects the others.
  template <class S>
  void read(S& target) {
    reject_duplicate_keys();
    visit_fields(*this, target);
    if (!node_.IsMap()) return;
    for (const auto& kv : node_) {
      std::string key = kv.first.Scalar();
      if (std::find(allowed_.begin(), allowed_.end(), key) == allowed_.end()) {
        std::string path = prefix_ + key;
        throw ConfigError(origin_.where(path, kv.first.Mark()) + ": unknown key '" + path + "': allowed keys are " +
                          join(allowed_));
      }
    }
  }

  template <class T>
  void field(const char* key, T& value, const char*) {
    allowed_.push_back(key);
    const YAML::Node n = node_[key];
    if (!n.IsDefined()) return;
    std::string path = prefix_ + key;
    origin_.record(path, mark_of(key, n));
    convert(n, path, value);
  }

  void choice(const char* key, std::string& value, const std::vector<std::string>& allowed, const char*) {
    allowed_.push_back(key);
    const YAML::Node n = node_[key];
    if (!n.IsDefined()) return;
    std::string path = prefix_ + key;
    origin_.record(path, n.Mark());
    value = one_of(n, path, allowed);
  }

  // A missing value (`steps:`) has its mark where the next token starts (the next line): point
  // at the key instead.
  YAML::Mark mark_of(const char* key, const YAML::Node& value) const {
    if (!value.IsNull()) return value.Mark();
    for (const auto& kv : node_)
      if (kv.first.Scalar() == key) return kv.first.Mark();
    return value.Mark();
  }

  void choice_list(const char* key, std::vector<std::string>& value, const std::vector<std::string>& allowed,
                   const char*) {
    allowed_.push_back(key);
    const YAML::Node n = node_[key];
    if (!n.IsDefined()) return;
    std::string path = prefix_ + key;
    origin_.record(path, n.Mark());
    value.clear();
    if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i)
        value.push_back(one_of(n[i], path + "[" + std::to_string(i) + "]", allowed));
    } else {
      value.push_back(one_of(n, path, allowed));  // a single name stands for a one-item list
    }
  }

  template <class S>
  void section(const char* key, S& sub, const char*) {
    allowed_.push_back(key);
    const YAML::Node n = node_[key];
    if (!n.IsDefined() || n.IsNull()) return;  // `eval:` with nothing under it keeps the defaults
    std::string path = prefix_ + key;
    if (!n.IsMap()) bad(n, path, "expected a mapping of keys");
    Reader(n, path + ".", origin_).read(sub);
  }

  // `layers: {3: {sparsity: 0.99}, ...}`: each entry starts from the (fully read) default.
  void layer_overrides(const char* key, AttentionSection& a, const char*) {
    allowed_.push_back(key);
    const YAML::Node n = node_[key];
    if (!n.IsDefined() || n.IsNull()) return;
    std::string path = prefix_ + key;
    if (!n.IsMap()) bad(n, path, "expected a mapping from layer index to attention keys");
    a.layers.clear();
    for (const auto& kv : n) {
      int64_t index = 0;
      const std::string& text = kv.first.Scalar();
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), index);
      if (ec != std::errc() || end != text.data() + text.size() || text.empty())
        throw ConfigError(origin_.where(path, kv.first.Mark()) + ": key '" + path +
                          "' expected layer indices (integers), got '" + text + "'");
      std::string layer_path = path + "." + std::to_string(index);
      if (a.layers.count(index))
        throw ConfigError(origin_.where(layer_path, kv.first.Mark()) + ": key '" + layer_path + "' is given twice");
      origin_.record(layer_path, kv.first.Mark());
      LayerAttention layer = a.base;
      const YAML::Node body = kv.second;
      if (!body.IsNull()) {
        if (!body.IsMap()) bad(body, layer_path, "expected a mapping of attention keys");
        Reader(body, layer_path + ".", origin_).read(layer);
      }
      a.layers.emplace(index, std::move(layer));
    }
  }

 private:
  // yaml-cpp keeps every copy of a repeated key and lookups find the first, so a later
  // `lr: 0.1` would be ignored without a word: refuse it, pointing at the repeat.
  void reject_duplicate_keys() const {
    if (!node_.IsMap()) return;
    std::map<std::string, YAML::Mark> first;
    for (const auto& kv : node_) {
      const std::string key = kv.first.Scalar();
      auto [it, fresh] = first.emplace(key, kv.first.Mark());
      if (fresh) continue;
      const std::string path = prefix_ + key;
      throw ConfigError(origin_.where(path, kv.first.Mark()) + ": key '" + path + "' is given twice (first at line " +
                        std::to_string(it->second.line + 1) + ")");
    }
  }

  [[noreturn]] void bad(const YAML::Node& n, const std::string& path, const std::string& expected) const {
    // A null's own mark is where the next token starts; the key (the path's last part) is clearer.
    YAML::Mark mark = n.Mark();
    if (n.IsNull()) mark = mark_of(path.substr(path.rfind('.') + 1).c_str(), n);
    throw ConfigError(origin_.where(path, mark) + ": key '" + path + "' " + expected + ", got " + describe(n));
  }

  const std::string& scalar(const YAML::Node& n, const std::string& path, const char* expected) const {
    if (!n.IsScalar()) bad(n, path, expected);
    return n.Scalar();
  }

  void convert(const YAML::Node& n, const std::string& path, int64_t& out) const {
    const std::string& s = scalar(n, path, "expected an integer");
    const char* b = s.data() + (!s.empty() && s[0] == '+');
    auto [end, ec] = std::from_chars(b, s.data() + s.size(), out);
    if (ec == std::errc::result_out_of_range) bad(n, path, "expected an integer in the 64-bit range");
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) bad(n, path, "expected an integer");
  }

  void convert(const YAML::Node& n, const std::string& path, uint64_t& out) const {
    const std::string& s = scalar(n, path, "expected a non-negative integer");
    const char* b = s.data() + (!s.empty() && s[0] == '+');
    auto [end, ec] = std::from_chars(b, s.data() + s.size(), out);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) bad(n, path, "expected a non-negative integer");
  }

  // Decimal and scientific numbers, and YAML's spellings of the non-finite ones (.inf, -.inf,
  // .nan, any case) as well as inf/nan: read as the numbers they are, so that validation can
  // say "must be a finite number" rather than "not a number".
  void convert(const YAML::Node& n, const std::string& path, double& out) const {
    const std::string& s = scalar(n, path, "expected a number");
    std::string lower = s;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    constexpr double inf = std::numeric_limits<double>::infinity();
    if (lower == ".inf" || lower == "+.inf") {
      out = inf;
    } else if (lower == "-.inf") {
      out = -inf;
    } else if (lower == ".nan") {
      out = std::numeric_limits<double>::quiet_NaN();
    } else {
      const char* b = s.data() + (!s.empty() && s[0] == '+');
      auto [end, ec] = std::from_chars(b, s.data() + s.size(), out);
      if ((ec != std::errc() && ec != std::errc::result_out_of_range) || end != s.data() + s.size() || s.empty())
        bad(n, path, "expected a number");
      // 1e999 or 1e-999: strtod rounds to the infinity or zero that validation then judges.
      if (ec == std::errc::result_out_of_range) out = std::strtod(s.c_str(), nullptr);
    }
  }

  void convert(const YAML::Node& n, const std::string& path, bool& out) const {
    std::string s = scalar(n, path, "expected true or false");
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "true" || s == "yes" || s == "on")
      out = true;
    else if (s == "false" || s == "no" || s == "off")
      out = false;
    else
      bad(n, path, "expected true or false");
  }

  void convert(const YAML::Node& n, const std::string& path, std::string& out) const {
    out = scalar(n, path, "expected a string");
    if (!valid_utf8(out)) bad(n, path, "expected UTF-8 text");
  }

  template <class T>
  void convert(const YAML::Node& n, const std::string& path, std::vector<T>& out) const {
    out.clear();
    if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i) {
        T v{};
        convert(n[i], path + "[" + std::to_string(i) + "]", v);
        out.push_back(v);
      }
    } else if (n.IsScalar()) {
      T v{};
      convert(n, path, v);  // a single value stands for a one-item list
      out.push_back(v);
    } else {
      bad(n, path, "expected a list");
    }
  }

  std::string one_of(const YAML::Node& n, const std::string& path, const std::vector<std::string>& allowed) const {
    const std::string& s = scalar(n, path, ("expected one of " + join(allowed)).c_str());
    if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) bad(n, path, "expected one of " + join(allowed));
    return s;
  }

  const YAML::Node node_;  // const: operator[] must never insert a missing key
  std::string prefix_;
  Origin& origin_;
  std::vector<std::string> allowed_;
};

}  // namespace

Config read_config(const YAML::Node& root, Origin& origin) {
  Config c;
  if (root.IsNull()) return c;
  if (!root.IsMap())
    throw ConfigError(origin.where("", root.Mark()) + ": the config must be a mapping of sections, got " +
                      describe(root));
  Reader(root, "", origin).read(c);
  return c;
}

}  // namespace sparrow::train::detail
