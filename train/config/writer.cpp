// Config -> YAML (to_yaml) and Config -> key reference (config_help), both by walking schema.h.
#include <charconv>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "train/config/config_io.h"
#include "train/config/schema.h"

namespace sparrow::train {
namespace detail {

std::string format_double(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

namespace {

std::string scalar_text(int64_t v) { return std::to_string(v); }
std::string scalar_text(uint64_t v) { return std::to_string(v); }
std::string scalar_text(double v) { return format_double(v); }
std::string scalar_text(bool v) { return v ? "true" : "false"; }
std::string scalar_text(const std::string& v) { return v; }
template <class T>
std::string scalar_text(const std::vector<T>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + scalar_text(v[i]);
  return s + "]";
}

// Builds a YAML::Node tree of every key in schema order.
class NodeWriter {
 public:
  YAML::Node out{YAML::NodeType::Map};

  template <class T>
  void field(const char* key, T& value, const char*) {
    out[key] = node_of(value);
  }
  void choice(const char* key, std::string& value, const std::vector<std::string>&, const char*) { out[key] = value; }
  void choice_list(const char* key, std::vector<std::string>& value, const std::vector<std::string>&, const char*) {
    out[key] = node_of(value);
  }
  template <class S>
  void section(const char* key, S& sub, const char*) {
    NodeWriter w;
    visit_fields(w, sub);
    out[key] = w.out;
  }
  // Each override as its difference from the default, so the file shows what the layer changes.
  void layer_overrides(const char* key, AttentionSection& a, const char*) {
    if (a.layers.empty()) return;
    NodeWriter base;
    visit_fields(base, a.base);
    YAML::Node layers(YAML::NodeType::Map);
    for (auto& [i, layer] : a.layers) {
      NodeWriter w;
      visit_fields(w, layer);
      YAML::Node d = diff(w.out, base.out);
      d.SetStyle(YAML::EmitterStyle::Flow);
      layers[std::to_string(i)] = d;
    }
    out[key] = layers;
  }

 private:
  template <class T>
  static YAML::Node node_of(const T& v) {
    return YAML::Node(scalar_text(v));
  }
  template <class T>
  static YAML::Node node_of(const std::vector<T>& v) {
    YAML::Node n(YAML::NodeType::Sequence);
    for (const auto& x : v) n.push_back(scalar_text(x));
    n.SetStyle(YAML::EmitterStyle::Flow);
    return n;
  }
  // Keys of `a` whose values differ from `b` (recursively into mappings).
  static YAML::Node diff(const YAML::Node& a, const YAML::Node& b) {
    YAML::Node d(YAML::NodeType::Map);
    for (const auto& kv : a) {
      const std::string key = kv.first.Scalar();
      const YAML::Node other = b[key];
      if (kv.second.IsMap() && other.IsMap()) {
        YAML::Node sub = diff(kv.second, other);
        if (sub.size() > 0) d[key] = sub;
      } else if (YAML::Dump(kv.second) != YAML::Dump(other)) {
        d[key] = kv.second;
      }
    }
    return d;
  }
};

// One line per key: dotted path, default, description (and the allowed values of enums).
class HelpWriter {
 public:
  std::ostringstream out;
  std::string prefix;

  template <class T>
  void field(const char* key, T& value, const char* help) {
    line(key, scalar_text(value), help);
  }
  void choice(const char* key, std::string& value, const std::vector<std::string>& allowed, const char* help) {
    line(key, value, std::string(help) + " (" + alternatives(allowed) + ")");
  }
  void choice_list(const char* key, std::vector<std::string>& value, const std::vector<std::string>& allowed,
                   const char* help) {
    line(key, scalar_text(value), std::string(help) + " (any of " + alternatives(allowed) + ")");
  }
  template <class S>
  void section(const char* key, S& sub, const char* help) {
    out << "\n" << prefix << key << ":  # " << help << "\n";
    std::string saved = prefix;
    prefix += std::string(key) + ".";
    visit_fields(*this, sub);
    prefix = saved;
  }
  void layer_overrides(const char* key, AttentionSection&, const char* help) {
    line(key, "{}", std::string(help) + ", e.g. {0: {backend: dense}, 5: {sparsity: 0.99}}");
  }

 private:
  static std::string alternatives(const std::vector<std::string>& allowed) {
    std::string s;
    for (size_t i = 0; i < allowed.size(); ++i) s += (i ? "|" : "") + allowed[i];
    return s;
  }
  void line(const char* key, const std::string& value, const std::string& help) {
    out << "  " << std::left << std::setw(40) << (prefix + key) << " " << std::setw(32)
        << (value.empty() ? "''" : value) << " " << help << "\n";
  }
};

}  // namespace
}  // namespace detail

std::string to_yaml(const Config& c) {
  Config copy = c;  // the visitors take mutable references; nothing is changed
  detail::NodeWriter w;
  visit_fields(w, copy);
  YAML::Emitter e;
  e << w.out;
  return std::string(e.c_str()) + "\n";
}

std::string config_help() {
  Config defaults;
  detail::HelpWriter h;
  h.out << "Configuration keys (YAML sections; override any with --set section.key=value):\n";
  visit_fields(h, defaults);
  return h.out.str();
}

bool LayerAttention::operator==(const LayerAttention& o) const {
  // Equal exactly when every schema key writes the same text; doubles are written in their
  // shortest round-trip form, so equal text means equal values.
  LayerAttention a = *this, b = o;
  detail::NodeWriter wa, wb;
  visit_fields(wa, a);
  visit_fields(wb, b);
  return YAML::Dump(wa.out) == YAML::Dump(wb.out);
}

const LayerAttention& AttentionSection::layer(int64_t i) const {
  auto it = layers.find(i);
  return it == layers.end() ? base : it->second;
}

}  // namespace sparrow::train
