#include "monitoring/rule_fields.h"

#include <set>

namespace vigil {

QualityRule ReadQualityRule(const YAML::Node& node, const std::string& field) {
  RequireMap(node, field, {"metric", "below", "drop", "window_s", "min_labels"});
  QualityRule rule;
  if (node["metric"]) rule.metric = ReadString(node["metric"], field + ".metric");
  if (node["below"]) rule.below = ReadDouble(node["below"], field + ".below");
  if (node["drop"]) rule.drop = ReadDouble(node["drop"], field + ".drop");
  if (node["window_s"]) rule.window_s = ReadInt(node["window_s"], field + ".window_s");
  if (node["min_labels"]) rule.min_labels = ReadInt(node["min_labels"], field + ".min_labels");
  if (auto [name, expected] = CheckQualityRule(rule); !expected.empty()) {
    throw ConfigError{name.empty() ? field : field + "." + name, expected};
  }
  return rule;
}

HealthLimits ReadHealthLimits(const YAML::Node& node, const std::string& field, bool with_queue) {
  std::set<std::string> keys{"latency_p99_ms", "error_rate", "min_requests"};
  if (with_queue) keys.insert("queue_saturation");
  RequireMap(node, field, keys);
  HealthLimits l;
  if (node["latency_p99_ms"]) l.latency_p99_ms = ReadDouble(node["latency_p99_ms"], field + ".latency_p99_ms");
  if (node["error_rate"]) l.error_rate = ReadDouble(node["error_rate"], field + ".error_rate");
  if (node["queue_saturation"]) l.queue_saturation = ReadDouble(node["queue_saturation"], field + ".queue_saturation");
  if (node["min_requests"]) l.min_requests = ReadInt(node["min_requests"], field + ".min_requests");
  if (auto [name, expected] = CheckHealthLimits(l); !expected.empty()) throw ConfigError{field + "." + name, expected};
  return l;
}

}  // namespace vigil
