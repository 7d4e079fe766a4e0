// load_config: file -> YAML tree, `--set` overrides written into the tree (so a per-layer
// override sees an overridden default), then read (reader.cpp) and validated (validate.cpp).
#include <algorithm>
#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

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

// Counts the documents of a YAML stream and where each one's first node starts. yaml-cpp 0.7
// (Debian's) can report a document without consuming any input (a lone ',' does:
// jbeder/yaml-cpp#1040; fixed upstream in 2024, after 0.8.0), and its LoadAll then appends null documents
// until memory runs out; so the stream is walked here, and a document that does not start past the
// previous one is refused as the malformed input it is.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;  // first node of each document

  void OnDocumentStart(const YAML::Mark&) override { first_ = true; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { node(m); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m);
  }
  void OnMapEnd() override {}

 private:
  void node(const YAML::Mark& m) {
    if (first_) starts.push_back(m);
    first_ = false;
  }
  bool first_ = false;
};

// Why a text is not one YAML document: where, and what (a phrase that follows "value " or a
// file position).
struct NotOneDocument {
  YAML::Mark mark;
  std::string what;
};

// The one document of `text` (a null node for an empty stream). More than one document is refused
// rather than silently ignored.
YAML::Node one_document(const std::string& text) {
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentStarts docs;
    for (size_t seen = 0; parser.HandleNextDocument(docs); seen = docs.starts.size()) {
      const bool stuck =
          docs.starts.size() == seen || (seen > 0 && docs.starts.back().pos <= docs.starts[seen - 1].pos);
      if (stuck)
        throw NotOneDocument{docs.starts.size() > seen ? docs.starts.back() : YAML::Mark::null_mark(),
                             "is not valid YAML: the parser cannot read past this point"};
    }
    if (docs.starts.size() > 1)
      throw NotOneDocument{docs.starts[1], "holds " + std::to_string(docs.starts.size()) +
                                               " YAML documents (separated by ---); a config is one document"};
    return docs.starts.empty() ? YAML::Node() : YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw NotOneDocument{e.mark, "is not valid YAML: " + yaml_message(e)};
  }
}

YAML::Node parse(const std::string& text, const std::string& source_name) {
  try {
    return one_document(text);
  } catch (const NotOneDocument& e) {
    const YAML::Mark& m = e.mark;
    const std::string at = m.line < 0 ? "" : ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
    // A file position reads "cfg.yaml:3:1: holds ..." / "cfg.yaml:1:1: not valid YAML: ...".
    throw ConfigError(source_name + at + ": " + (e.what.rfind("is ", 0) == 0 ? e.what.substr(3) : e.what));
  }
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
    value = one_document(spec.substr(eq + 1));
  } catch (const NotOneDocument& e) {
    throw ConfigError(label + ": key '" + path + "' value " + e.what);
  }
  origin.add_override(path, label);
  set_path(root, parts, 0, value, label);
}

Config load(YAML::Node root, const std::string& source_name, const std::vector<std::string>& overrides) {
  detail::Origin origin(source_name.empty() ? "<defaults>" : source_name);
  // No file (train --set ... alone) means the defaults; a file with nothing in it is more
  // likely a mistake (a truncated copy, the wrong path) than a request for every default.
  if (!source_name.empty() && (!root.IsDefined() || root.IsNull()))
    throw ConfigError(source_name +
                      ": the config is empty (an empty file is not a run description: give at least one section)");
  if (!root.IsDefined() || root.IsNull()) root.reset(YAML::Node(YAML::NodeType::Map));
  if (!root.IsMap()) throw ConfigError(origin.where("", root.Mark()) + ": the config must be a mapping of sections");
  for (const std::string& spec : overrides) apply_override(root, spec, origin);
  Config c = detail::read_config(root, origin);
  detail::validate_config(c, origin);
  return c;
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
