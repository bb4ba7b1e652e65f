// Deployment specs: what an endpoint serves. An endpoint is a stable name
// clients call like a model; its spec names the production model version and
// the candidates beside it, each with a mode:
//
//   ab      a fixed share of traffic (percent, decimals allowed), sticky per
//           routing key;
//   canary  a share raised step by step through `steps` (the current one is
//           `step`, an index; -1 = not started);
//   shadow  a share of requests also sent to the candidate, answer recorded,
//           never returned;
//
// and flags: rules on request parameters or headers that send matching
// requests to a named variant (first match wins). `kill_switch` sends
// everything to production.
//
//   endpoint: cancer            # optional; the file name / URL names it
//   production: {model: breast_cancer_mlp, version: 1}
//   routing_key: {parameter: vigil.routing_key, header: X-Vigil-Routing-Key}
//   candidates:
//     - {name: v2, model: breast_cancer_mlp, version: 2, mode: ab, share: 10}
//     - {name: next, model: breast_cancer_xgb, mode: canary, steps: [1, 5, 25, 50], step: 0}
//     - {name: mirror, model: breast_cancer_mlp_onnx, mode: shadow, share: 20}
//     - {name: v3, model: breast_cancer_mlp, version: 3, mode: canary, steps: [5, 50], mirror: 100}  # copies only
//   flags:
//     - name: beta
//       variant: v2
//       rules:                  # all must match
//         - {parameter: country, in: [FR, DE]}
//         - {header: X-App-Version, semver: ">=2.3.0"}
//         - {parameter: age, op: ">=", value: 18}
//         - {parameter: email, regex: ".*@example\\.com"}
//         - {percent: 20}       # of the routing keys that got this far
//   kill_switch: false
//   paused: false
//   rollout: {candidate: next, metric: {name: accuracy}}   # optional, see routing/rollout_policy.h
//   overload: {slo_ms: 50, fallback: {model: small}, shed_retry_after_s: 1, recover_after_s: 10}  # optional
//   monitoring:                 # optional; its quality rule replaces the models' here
//     quality: {metric: accuracy, drop: 0.05, window_s: 3600, min_labels: 30}
//     health: {latency_p99_ms: 50, error_rate: 0.01, min_requests: 20}
//     alert_after: 3
//     resolve_after: 3
//
// Parse → validate as free functions, like model configs; every error names
// the field.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "monitoring/health.h"
#include "monitoring/quality.h"
#include "routing/rollout_policy.h"
#include "routing/spec_writer.h"

namespace re2 {
class RE2;
}

namespace vigil {

// What a spec may hold, at most: enough for any real rollout, bounded so no
// spec can make routing slow or the server allocate without end.
constexpr size_t kMaxCandidates = 32;
constexpr size_t kMaxFlags = 64;
constexpr size_t kMaxRulesPerFlag = 32;
constexpr size_t kMaxRuleValues = 1024;
constexpr size_t kMaxRegexBytes = 1024;
// A request attribute (parameter or header) longer than this matches no
// flag rule: rules never scan more than this many bytes of a request.
constexpr size_t kMaxRuleInputBytes = 4096;

enum class VariantMode { kProduction, kAb, kCanary, kShadow };
std::string_view VariantModeName(VariantMode mode);

struct Variant {
  std::string name;  // "production" for the production variant
  std::string model;
  int64_t version = 0;  // 0 = the model's latest READY version
  VariantMode mode = VariantMode::kProduction;
  double share = 0;           // ab, shadow: percent of traffic
  std::vector<double> steps;  // canary: the shares it goes through, ascending
  int step = -1;              // canary: index into steps; -1 = 0%
  // ab, canary: the percent of requests also copied to it as to a shadow
  // (answer recorded, never returned) — the rollout's shadow stage, before
  // it answers any traffic. 0 = none.
  double mirror = 0;
  // Its shadow copies (as a shadow, or a candidate's mirror) may use this
  // share of one core's time, measured from their own compute; a copy over
  // it is dropped and counted. None: kDefaultShadowMaxCpu.
  std::optional<double> max_cpu{};

  // The share of traffic it gets now (canary: steps[step]).
  double CurrentShare() const;
  // The most it can get without a spec change (canary: the last step).
  double MaxShare() const;
  // The shares it goes through: a canary's steps, an ab candidate's one share.
  std::vector<double> StepShares() const { return mode == VariantMode::kCanary ? steps : std::vector<double>{share}; }
};

// The share of one core a shadow's copies may use when its spec says nothing.
constexpr double kDefaultShadowMaxCpu = 0.1;

// How an endpoint degrades under load (`overload:`, docs/overload.md): each
// request's deadline (its own, else `slo_ms`) against the predicted wait of
// each rung — (0) the variant's model or full ensemble, (1) the ensemble's
// members that can answer in time, (2) `fallback`, (3) shed with 429 and
// Retry-After — and an endpoint-wide rung that steps back down only after
// `recover_after_s` without a request needing it.
struct OverloadPolicy {
  double slo_ms = 100;
  std::optional<Variant> fallback;  // model, version (0: latest)
  int64_t shed_retry_after_s = 1;
  double recover_after_s = 10;
};

struct Semver {
  int64_t major = 0, minor = 0, patch = 0;
  std::string prerelease;  // empty for a release; a release sorts after its prereleases
};
std::optional<Semver> ParseSemver(std::string_view text);
int CompareSemver(const Semver& a, const Semver& b);

enum class RuleOp { kIn, kNotIn, kEq, kLt, kLe, kGt, kGe, kSemver, kRegex, kPercent };

struct FlagRule {
  // Exactly one of parameter / header names the attribute (not for kPercent).
  std::string parameter;
  std::string header;  // lower-case
  RuleOp op = RuleOp::kEq;
  std::vector<std::string> values;  // kIn, kNotIn, kEq (one)
  double number = 0;                // kLt..kGe; kPercent: percent
  RuleOp semver_op = RuleOp::kEq;   // kSemver: kEq/kLt/kLe/kGt/kGe, or kNotIn for "!="
  Semver semver;
  std::string pattern;  // kRegex, as written (RE2 syntax; matched against the whole value)
  std::shared_ptr<const re2::RE2> regex;
};

struct Flag {
  std::string name;
  std::string variant;  // a candidate name or "production"
  std::vector<FlagRule> rules;
};

struct DeploymentSpec {
  std::string endpoint;
  Variant production;
  std::vector<Variant> candidates;  // in spec order
  std::vector<Flag> flags;          // first match wins
  std::string key_parameter = "vigil.routing_key";
  std::string key_header = "x-vigil-routing-key";  // lower-case
  bool kill_switch = false;
  bool paused = false;
  // The endpoint's own alert rules (`monitoring:`): a quality rule that
  // replaces its models' config.yaml rules for this endpoint's traffic, and
  // the windows in a row that fire / resolve its alerts (0 = the model's).
  std::optional<QualityRule> quality;
  // Guardrails on each variant's own traffic through the endpoint
  // (LatencyHigh and ErrorRateHigh{endpoint, variant}); none by default.
  std::optional<HealthLimits> health;
  int64_t alert_after = 0, resolve_after = 0;
  // How the rollout controller decides about one candidate (`rollout:`,
  // routing/rollout_policy.h); none = people decide.
  std::optional<RolloutPolicy> rollout;
  // How it degrades under load; none = every request is admitted or shed by
  // its model version's own admission alone.
  std::optional<OverloadPolicy> overload;

  // The percent of traffic production answers now: what the ab and canary
  // candidates' current shares leave (shadows copy traffic, they take none).
  double ProductionShare() const;
  // The candidate called `name`, or nullptr.
  const Variant* Candidate(std::string_view name) const;
  Variant* Candidate(std::string_view name);
};

// Parses YAML or JSON. `endpoint` is the name from the file or URL; a spec
// that names another endpoint is an error.
StatusOr<DeploymentSpec> ParseDeploymentSpec(std::string_view endpoint, std::string_view text);

// What validation needs to know about the server's models.
struct ModelCatalog {
  // OK when the model exists and (version != 0) has that version loaded.
  std::function<Status(const std::string& model, int64_t version)> check;
  // True when a model of that name exists (an endpoint must not shadow it).
  std::function<bool(const std::string& name)> is_model;
  // Told after every change which model versions the specs in force name
  // (model, version -> "endpoint a, b"), so exactly those stay loaded
  // whatever their version_policy. May be null.
  std::function<void(const std::map<std::pair<std::string, int64_t>, std::string>& named)> in_use;
};

// Checks what parsing cannot: the models and versions exist, shares fit in
// 100% (ab shares plus every canary's last step), at most one shadow per
// model version, flag variants exist, the endpoint is not a model's name.
Status ValidateDeploymentSpec(const DeploymentSpec& spec, const ModelCatalog& catalog);

// Parse + validate.
StatusOr<DeploymentSpec> LoadDeploymentSpec(std::string_view endpoint, std::string_view text,
                                            const ModelCatalog& catalog);

// The spec, in a form ParseDeploymentSpec reads back to the same spec.
void WriteDeploymentSpec(const DeploymentSpec& spec, SpecWriter& out);
// The same as YAML.
std::string DeploymentSpecToYaml(const DeploymentSpec& spec);

}  // namespace vigil
