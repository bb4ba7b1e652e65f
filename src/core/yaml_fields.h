// Reading typed fields out of a YAML (or JSON) tree with errors that name the
// field and what was expected. Used by every config schema (model config.yaml,
// deployment specs). Readers throw ConfigError; a schema's parse function
// converts it to a Status at its edge.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace vigil {

struct ConfigError {
  std::string field;     // dotted path, e.g. "candidates[1].share"
  std::string expected;  // what should have been there, and what was
};

// "nothing", "'text'", "a list", "a map".
std::string Describe(const YAML::Node& node);
// `node` is a map whose keys are all in `allowed`, each once.
void RequireMap(const YAML::Node& node, const std::string& field, const std::set<std::string>& allowed);
int64_t ReadInt(const YAML::Node& node, const std::string& field);
double ReadDouble(const YAML::Node& node, const std::string& field);
// The same, refusing values outside [min, max] with a message that gives the range.
int64_t ReadInt(const YAML::Node& node, const std::string& field, int64_t min, int64_t max);
double ReadDouble(const YAML::Node& node, const std::string& field, double min, double max);
// A list of at most `max_items` entries (a config must not make the server
// allocate without bound).
void RequireListSize(const YAML::Node& node, const std::string& field, size_t max_items);
bool ReadBool(const YAML::Node& node, const std::string& field);
std::string ReadString(const YAML::Node& node, const std::string& field);
// Lists of at most `max_items` entries.
std::vector<int64_t> ReadIntList(const YAML::Node& node, const std::string& field, size_t max_items = 1024);
std::vector<double> ReadDoubleList(const YAML::Node& node, const std::string& field, size_t max_items = 1024);
std::vector<std::string> ReadStringList(const YAML::Node& node, const std::string& field, size_t max_items = 1024);

// A string naming one of `choices`, as its value; anything else is an error
// that lists them: "mean, vote or max, got 'median'".
template <typename T>
T ReadChoice(const YAML::Node& node, const std::string& field,
             std::initializer_list<std::pair<const char*, T>> choices) {
  const std::string text = ReadString(node, field);
  std::string names;
  size_t i = 0;
  for (const auto& [name, value] : choices) {
    if (text == name) return value;
    names += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + std::string(name);
    ++i;
  }
  throw ConfigError{field, names + ", got '" + text + "'"};
}

}  // namespace vigil
