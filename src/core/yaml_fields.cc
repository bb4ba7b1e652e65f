#include "core/yaml_fields.h"

#include "core/utf8.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace vigil {
namespace {

// 0.5, 100, 1e+09: short enough for a message.
std::string ShortNumber(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar: {
      // Messages quote what was given, but not a megabyte of it.
      const std::string& v = node.Scalar();
      return "'" + (v.size() > 64 ? v.substr(0, 64) + "...' (" + std::to_string(v.size()) + " bytes)" : v + "'");
    }
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "an undefined value";
  }
}

void RequireMap(const YAML::Node& node, const std::string& field, const std::set<std::string>& allowed) {
  if (!node.IsMap()) throw ConfigError{field, "a map, got " + Describe(node)};
  std::set<std::string> seen;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (!seen.insert(key).second) {
      throw ConfigError{field.empty() ? key : field + "." + key, "each key once, but it appears twice"};
    }
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw ConfigError{field.empty() ? key : field + "." + key, "no such key (known: " + list + ")"};
    }
  }
}

int64_t ReadInt(const YAML::Node& node, const std::string& field) {
  if (!node.IsScalar()) throw ConfigError{field, "an integer, got " + Describe(node)};
  try {
    size_t pos = 0;
    const std::string& s = node.Scalar();
    long long v = std::stoll(s, &pos);
    if (pos != s.size()) throw std::invalid_argument(s);
    return v;
  } catch (const std::exception&) {
    throw ConfigError{field, "an integer, got " + Describe(node)};
  }
}

int64_t ReadInt(const YAML::Node& node, const std::string& field, int64_t min, int64_t max) {
  const int64_t v = ReadInt(node, field);
  if (v < min || v > max) {
    throw ConfigError{
        field, "an integer from " + std::to_string(min) + " to " + std::to_string(max) + ", got " + std::to_string(v)};
  }
  return v;
}

double ReadDouble(const YAML::Node& node, const std::string& field, double min, double max) {
  const double v = ReadDouble(node, field);
  if (v < min || v > max) {
    throw ConfigError{field,
                      "a number from " + ShortNumber(min) + " to " + ShortNumber(max) + ", got " + ShortNumber(v)};
  }
  return v;
}

void RequireListSize(const YAML::Node& node, const std::string& field, size_t max_items) {
  if (node.IsSequence() && node.size() > max_items) {
    throw ConfigError{field, "at most " + std::to_string(max_items) + " entries, got " + std::to_string(node.size())};
  }
}

bool ReadBool(const YAML::Node& node, const std::string& field) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    if (s == "true" || s == "True" || s == "yes") return true;
    if (s == "false" || s == "False" || s == "no") return false;
  }
  throw ConfigError{field, "true or false, got " + Describe(node)};
}

std::string ReadString(const YAML::Node& node, const std::string& field) {
  if (!node.IsScalar()) throw ConfigError{field, "a string, got " + Describe(node)};
  // Specs are stored as YAML and shown in JSON and logs: their text must be
  // UTF-8 without control characters (a NUL would cut a stored spec short).
  const std::string& v = node.Scalar();
  for (unsigned char c : v) {
    if (c < 0x20 || c == 0x7F) throw ConfigError{field, "text without control characters"};
  }
  if (!IsValidUtf8(v)) throw ConfigError{field, "text in UTF-8"};
  return v;
}

std::vector<int64_t> ReadIntList(const YAML::Node& node, const std::string& field, size_t max_items) {
  if (!node.IsSequence()) throw ConfigError{field, "a list of integers, got " + Describe(node)};
  RequireListSize(node, field, max_items);
  std::vector<int64_t> out;
  for (size_t i = 0; i < node.size(); ++i) out.push_back(ReadInt(node[i], field + "[" + std::to_string(i) + "]"));
  return out;
}

double ReadDouble(const YAML::Node& node, const std::string& field) {
  if (!node.IsScalar()) throw ConfigError{field, "a number, got " + Describe(node)};
  try {
    size_t pos = 0;
    const std::string& s = node.Scalar();
    const double v = std::stod(s, &pos);
    if (pos != s.size() || !std::isfinite(v)) throw std::invalid_argument(s);
    return v;
  } catch (const std::exception&) {
    throw ConfigError{field, "a number, got " + Describe(node)};
  }
}

std::vector<double> ReadDoubleList(const YAML::Node& node, const std::string& field, size_t max_items) {
  if (!node.IsSequence()) throw ConfigError{field, "a list of numbers, got " + Describe(node)};
  RequireListSize(node, field, max_items);
  std::vector<double> out;
  for (size_t i = 0; i < node.size(); ++i) out.push_back(ReadDouble(node[i], field + "[" + std::to_string(i) + "]"));
  return out;
}

std::vector<std::string> ReadStringList(const YAML::Node& node, const std::string& field, size_t max_items) {
  if (!node.IsSequence()) throw ConfigError{field, "a list of strings, got " + Describe(node)};
  RequireListSize(node, field, max_items);
  std::vector<std::string> out;
  for (size_t i = 0; i < node.size(); ++i) out.push_back(ReadString(node[i], field + "[" + std::to_string(i) + "]"));
  return out;
}

}  // namespace vigil
