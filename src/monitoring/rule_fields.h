// The monitoring rules as config schemas spell them (a model's
// `monitoring:` block, an endpoint's spec), read with the typed field
// readers of core/yaml_fields.h: ConfigError names the field.
#pragma once

#include <string>

#include "core/yaml_fields.h"
#include "monitoring/health.h"
#include "monitoring/quality.h"

namespace vigil {

// A quality rule ({metric, below, drop, window_s, min_labels}), checked.
QualityRule ReadQualityRule(const YAML::Node& node, const std::string& field);
// Health limits ({latency_p99_ms, error_rate, min_requests}, and
// queue_saturation when `with_queue`), checked.
HealthLimits ReadHealthLimits(const YAML::Node& node, const std::string& field, bool with_queue);

}  // namespace vigil
