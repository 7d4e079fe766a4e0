// load_config: file -> YAML tree, `--set` overrides written into the tree (so a per-layer
// override sees an overridden default), then read (reader.cpp) and validated (validate.cpp).
#include <algorithm>
#include <sstream>

#include "attention/attention.h"
#include "framework/core/error.h"
#include "framework/core/file_io.h"
#include "train/config/config_io.h"
#include "train/config/schema.h"

namespace sparrow::train {

std::vector<std::string> attention_backend_choices() {
  // The registry is the one list of backends: a new backend needs no edit here. Read afresh each
  // time, so that a backend registered from outside the library (attn::register_attention) after
  // start-up is accepted too.
  return attn::attention_backend_names();
}

const std::vector<std::string>& attention_pattern_choices() {
  static const std::vector<std::string> names{"local", "dilated", "strided", "fixed", "global", "random", "bigbird"};
  return names;
}

namespace {

// Real configs are a few KiB; the cap keeps a hostile or mistaken file (a corpus passed as the
// config, a 50 MB generated list) from exhausting memory in the YAML parser.
constexpr uint64_t kMaxConfigBytes = uint64_t(16) << 20;

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string yaml_message(const YAML::Exception& e) {
  // yaml-cpp's what() already carries "yaml-cpp: error at line L, column C: msg"; keep the msg.
  return e.msg;
}

// Sets root[a][b]...[z] = value, creating sections on the way; a value in the way is an error.
void set_path(YAML::Node node, const std::vector<std::string>& parts, size_t i, const YAML::Node& value,
              const std::string& label) {
  const std::string& key = parts[i];
  if (i + 1 == parts.size()) {
    node[key] = value;
    return;
  }
  if (!node[key].IsDefined() || node[key].IsNull()) node[key] = YAML::Node(YAML::NodeType::Map);
  YAML::Node child = node[key];  // copy-construction shares the node (assignment would overwrite it)
  if (!child.IsMap()) {
    std::string path;
    for (size_t k = 0; k <= i; ++k) path += (k ? "." : "") + parts[k];
    throw ConfigError(label + ": key '" + path + "' holds a value, not a section");
  }
  set_path(child, parts, i + 1, value, label);
}

void apply_override(YAML::Node& root, const std::string& spec, detail::Origin& origin) {
  const std::string label = "--set " + spec;
  size_t eq = spec.find('=');
  std::string path = eq == std::string::npos ? "" : trim(spec.substr(0, eq));
  if (path.empty()) throw ConfigError(label + ": expected KEY=VALUE with a dotted key, e.g. train.steps=100");
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  if (path.back() == '.' || std::find(parts.begin(), parts.end(), "") != parts.end())
    throw ConfigError(label + ": key '" + path + "' has an empty part");
  YAML::Node value;
  try {
    value = YAML::Load(spec.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError(label + ": key '" + path + "' value is not valid YAML: " + yaml_message(e));
  }
  origin.add_override(path, label);
  set_path(root, parts, 0, value, label);
}

Config load(YAML::Node root, const std::string& source_name, const std::vector<std::string>& overrides) {
  detail::Origin origin(source_name.empty() ? "<defaults>" : source_name);
  // No file (train --set ... alone) means the defaults; a file with nothing in it is more
  // likely a mistake (a truncated copy, the wrong path) than a request for every default.
  if (!source_name.empty() && (!root.IsDefined() || root.IsNull()))
    throw ConfigError(source_name + ": the config is empty (an empty file is not a run description: give at least one section)");
  if (!root.IsDefined() || root.IsNull()) root.reset(YAML::Node(YAML::NodeType::Map));
  if (!root.IsMap())
    throw ConfigError(origin.where("", root.Mark()) + ": the config must be a mapping of sections");
  for (const std::string& spec : overrides) apply_override(root, spec, origin);
  Config c = detail::read_config(root, origin);
  detail::validate_config(c, origin);
  return c;
}

YAML::Node parse(const std::string& text, const std::string& source_name) {
  try {
    // All documents, so a second one (after `---`) is refused rather than silently ignored.
    std::vector<YAML::Node> docs = YAML::LoadAll(text);
    if (docs.size() > 1) {
      const YAML::Mark m = docs[1].Mark();
      const std::string at =
          m.line < 0 ? "" : ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
      throw ConfigError(source_name + at + ": holds " + std::to_string(docs.size()) +
                        " YAML documents (separated by ---); a config is one document");
    }
    return docs.empty() ? YAML::Node() : docs[0];
  } catch (const YAML::Exception& e) {
    throw ConfigError(source_name + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                      ": not valid YAML: " + yaml_message(e));
  }
}

}  // namespace

Config load_config_text(const std::string& yaml_text, const std::string& source_name,
                        const std::vector<std::string>& overrides) {
  return load(parse(yaml_text, source_name), source_name, overrides);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return load(YAML::Node(YAML::NodeType::Map), "", overrides);
  std::string text;
  try {
    text = read_small_file(path, kMaxConfigBytes, "config file");
  } catch (const Error& e) {
    throw ConfigError(e.what());
  }
  return load(parse(text, path), path, overrides);
}

}  // namespace sparrow::train
