// Internals shared by the config reader, validator and writer (not part of the public API).
#pragma once
#include <map>
#include <string>

#include <yaml-cpp/yaml.h>

#include "train/config/config.h"

namespace sparrow::train::detail {

// Where each value came from, for one-line messages: "file:line:col" from the node's mark
// (yaml-cpp counts from 0; we print from 1), or "--set a.b=c" for a value an override put there.
class Origin {
 public:
  explicit Origin(std::string file) : file_(std::move(file)) {}
  const std::string& file() const { return file_; }
  void add_override(const std::string& path, const std::string& label) { overrides_[path] = label; }
  // Location of the node at `path` (dotted key path) with this mark.
  std::string where(const std::string& path, const YAML::Mark& mark) const;
  // Remembers where a field's value was read; validation messages use it.
  void record(const std::string& path, const YAML::Mark& mark) { seen_[path] = where(path, mark); }
  // Where `path` was set; the file name alone when it holds its default.
  std::string where_set(const std::string& path) const;
  bool was_set(const std::string& path) const { return seen_.count(path) > 0; }

 private:
  std::string file_;
  std::map<std::string, std::string> overrides_;  // override path -> "--set ..."
  std::map<std::string, std::string> seen_;       // field path -> location
};

// Parses the (already overridden) document into a Config; throws ConfigError.
Config read_config(const YAML::Node& root, Origin& origin);
// Range and consistency checks; throws ConfigError naming the key and where it was set.
void validate_config(const Config& c, const Origin& origin);

// Shortest text that parses back to the same double ("0.1", "1e-08", "10000").
std::string format_double(double v);

}  // namespace sparrow::train::detail
