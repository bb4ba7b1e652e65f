// SpecWriter: how a spec is written out as a tree of maps, lists and
// scalars, so YAML and JSON come from one walk of the spec (deployment
// specs and their blocks, e.g. the rollout policy).
#pragma once

#include <cstdint>
#include <string>

namespace vigil {

// Receives a spec as a tree of maps, lists and scalars: YAML and JSON
// writers implement it, so both formats come from one walk of the spec.
class SpecWriter {
 public:
  virtual ~SpecWriter() = default;
  virtual void BeginMap(bool inline_map) = 0;  // inline: short, on one line (YAML flow style)
  virtual void EndMap() = 0;
  virtual void BeginList(bool inline_list) = 0;
  virtual void EndList() = 0;
  virtual void Key(const std::string& key) = 0;
  virtual void String(const std::string& value) = 0;
  virtual void Int(int64_t value) = 0;
  virtual void Double(double value) = 0;
  virtual void Bool(bool value) = 0;
};

}  // namespace vigil
