#include "routing/deployment_spec.h"

#include <fmt/format.h>
#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "core/yaml_fields.h"
#include "monitoring/rule_fields.h"

namespace vigil {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Letters, digits, '_', '-' and '.', starting with a letter or digit (so
// never "." or ".."), at most 128 bytes.
bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 128 || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  for (unsigned char c : s) {
    if (!std::isalnum(c) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}

constexpr const char* kNameRule = "a name of letters, digits, '_', '-' or '.' that starts with a letter or digit";

// An attribute name a rule or the routing key reads: 1 to 128 bytes.
std::string ReadAttributeName(const YAML::Node& node, const std::string& field) {
  std::string name = ReadString(node, field);
  if (name.empty() || name.size() > 128) throw ConfigError{field, "a name of 1 to 128 bytes"};
  return name;
}

// Version folders have at most 18 digits.
constexpr int64_t kMaxVersionNumber = 999'999'999'999'999'999;

double ReadPercent(const YAML::Node& node, const std::string& field) {
  const double v = ReadDouble(node, field);
  if (v < 0 || v > 100) throw ConfigError{field, fmt::format("a percent from 0 to 100, got {}", v)};
  return v;
}

Variant ReadModelRef(const YAML::Node& node, const std::string& field, std::set<std::string> allowed) {
  allowed.insert({"model", "version"});
  RequireMap(node, field, allowed);
  Variant v;
  if (!node["model"]) throw ConfigError{field + ".model", "the name of a model in the repository"};
  v.model = ReadString(node["model"], field + ".model");
  if (node["version"]) {
    v.version = ReadInt(node["version"], field + ".version");
    if (v.version < 1 || v.version > kMaxVersionNumber)
      throw ConfigError{field + ".version", "a version number from 1 to " + std::to_string(kMaxVersionNumber)};
  }
  return v;
}

RuleOp ParseCompareOp(const std::string& op, const std::string& field) {
  if (op == "<") return RuleOp::kLt;
  if (op == "<=") return RuleOp::kLe;
  if (op == ">") return RuleOp::kGt;
  if (op == ">=") return RuleOp::kGe;
  if (op == "==" || op == "=") return RuleOp::kEq;
  if (op == "!=") return RuleOp::kNotIn;
  throw ConfigError{field, "one of <, <=, >, >=, ==, !=, got '" + op + "'"};
}

FlagRule ReadRule(const YAML::Node& node, const std::string& field) {
  RequireMap(node, field, {"parameter", "header", "in", "not_in", "eq", "op", "value", "semver", "regex", "percent"});
  FlagRule r;
  if (node["percent"]) {
    if (node.size() != 1) throw ConfigError{field, "{percent: N} alone (it applies to the routing key)"};
    r.op = RuleOp::kPercent;
    r.number = ReadPercent(node["percent"], field + ".percent");
    return r;
  }
  if (node["parameter"] && node["header"]) throw ConfigError{field, "either parameter or header, not both"};
  if (node["parameter"]) {
    r.parameter = ReadAttributeName(node["parameter"], field + ".parameter");
  } else if (node["header"]) {
    r.header = Lower(ReadAttributeName(node["header"], field + ".header"));
  } else {
    throw ConfigError{field, "a parameter or header to test (or {percent: N})"};
  }
  int ops = 0;
  for (const char* k : {"in", "not_in", "eq", "op", "semver", "regex"}) ops += node[k] ? 1 : 0;
  if (ops != 1) throw ConfigError{field, "exactly one test: in, not_in, eq, op (with value), semver or regex"};
  if (node["value"] && !node["op"]) throw ConfigError{field + ".value", "only with op"};
  if (node["in"]) {
    r.op = RuleOp::kIn;
    r.values = ReadStringList(node["in"], field + ".in", kMaxRuleValues);
  } else if (node["not_in"]) {
    r.op = RuleOp::kNotIn;
    r.values = ReadStringList(node["not_in"], field + ".not_in", kMaxRuleValues);
  } else if (node["eq"]) {
    r.op = RuleOp::kEq;
    r.values = {ReadString(node["eq"], field + ".eq")};
  } else if (node["op"]) {
    r.op = ParseCompareOp(ReadString(node["op"], field + ".op"), field + ".op");
    if (r.op == RuleOp::kEq || r.op == RuleOp::kNotIn) {
      throw ConfigError{field + ".op", "a numeric comparison <, <=, > or >= (use eq / not_in for equality)"};
    }
    if (!node["value"]) throw ConfigError{field + ".value", "the number to compare with"};
    r.number = ReadDouble(node["value"], field + ".value");
  } else if (node["semver"]) {
    const std::string text = ReadString(node["semver"], field + ".semver");
    size_t i = 0;
    while (i < text.size() && std::string_view("<>=!").find(text[i]) != std::string_view::npos) ++i;
    r.op = RuleOp::kSemver;
    r.semver_op = i == 0 ? RuleOp::kEq : ParseCompareOp(text.substr(0, i), field + ".semver");
    auto v = ParseSemver(text.substr(i));
    if (!v) throw ConfigError{field + ".semver", "an operator and a version such as \">=2.3.0\", got '" + text + "'"};
    r.semver = *v;
  } else {
    r.op = RuleOp::kRegex;
    r.pattern = ReadString(node["regex"], field + ".regex");
    if (r.pattern.size() > kMaxRegexBytes) {
      throw ConfigError{field + ".regex", "a pattern of at most " + std::to_string(kMaxRegexBytes) + " bytes"};
    }
    // RE2 matches in time linear in the input, whatever the pattern, and
    // bounds the memory a pattern may take.
    RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(1 << 20);
    auto regex = std::make_shared<const RE2>(r.pattern, options);
    if (!regex->ok()) {
      throw ConfigError{field + ".regex", "a valid RE2 regular expression (" + regex->error() + ")"};
    }
    r.regex = std::move(regex);
  }
  return r;
}

DeploymentSpec ParseTree(const std::string& endpoint, const YAML::Node& root) {
  RequireMap(root, "",
             {"endpoint", "production", "routing_key", "candidates", "flags", "kill_switch", "paused", "monitoring",
              "rollout", "overload"});
  DeploymentSpec spec;
  spec.endpoint = endpoint;
  if (root["endpoint"]) {
    const std::string e = ReadString(root["endpoint"], "endpoint");
    if (e != endpoint)
      throw ConfigError{"endpoint", "'" + endpoint + "' (the name it is stored under), got '" + e + "'"};
  }
  if (!ValidName(endpoint)) throw ConfigError{"endpoint", kNameRule};
  if (!root["production"]) throw ConfigError{"production", "{model: NAME, version: N}"};
  spec.production = ReadModelRef(root["production"], "production", {});
  spec.production.name = "production";
  if (const YAML::Node k = root["routing_key"]) {
    RequireMap(k, "routing_key", {"parameter", "header"});
    if (k["parameter"]) spec.key_parameter = ReadAttributeName(k["parameter"], "routing_key.parameter");
    if (k["header"]) spec.key_header = Lower(ReadAttributeName(k["header"], "routing_key.header"));
  }
  std::set<std::string> names;
  if (const YAML::Node cs = root["candidates"]) {
    if (!cs.IsSequence()) throw ConfigError{"candidates", "a list of candidates, got " + Describe(cs)};
    RequireListSize(cs, "candidates", kMaxCandidates);
    for (size_t i = 0; i < cs.size(); ++i) {
      const std::string f = "candidates[" + std::to_string(i) + "]";
      Variant v = ReadModelRef(cs[i], f, {"name", "mode", "share", "steps", "step", "mirror", "max_cpu"});
      if (!cs[i]["name"]) throw ConfigError{f + ".name", "a name for the variant"};
      v.name = ReadString(cs[i]["name"], f + ".name");
      if (!ValidName(v.name) || v.name == "production") {
        throw ConfigError{f + ".name",
                          std::string(kNameRule) + ", other than 'production', got " + Describe(cs[i]["name"])};
      }
      if (!names.insert(v.name).second) throw ConfigError{f + ".name", "a name used once, '" + v.name + "' repeats"};
      if (!cs[i]["mode"]) throw ConfigError{f + ".mode", "ab, canary or shadow"};
      v.mode = ReadChoice<VariantMode>(
          cs[i]["mode"], f + ".mode",
          {{"ab", VariantMode::kAb}, {"canary", VariantMode::kCanary}, {"shadow", VariantMode::kShadow}});
      if (v.mode == VariantMode::kCanary) {
        if (cs[i]["share"]) throw ConfigError{f + ".share", "no share for a canary: its share is steps[step]"};
        if (!cs[i]["steps"]) throw ConfigError{f + ".steps", "the shares it goes through, e.g. [1, 5, 25, 50, 100]"};
        v.steps = ReadDoubleList(cs[i]["steps"], f + ".steps", 100);
        if (v.steps.empty()) throw ConfigError{f + ".steps", "at least one step"};
        for (size_t s = 0; s < v.steps.size(); ++s) {
          const std::string sf = f + ".steps[" + std::to_string(s) + "]";
          if (v.steps[s] <= 0 || v.steps[s] > 100)
            throw ConfigError{sf, fmt::format("a percent in (0, 100], got {}", v.steps[s])};
          if (s > 0 && v.steps[s] <= v.steps[s - 1]) throw ConfigError{sf, "steps in ascending order"};
        }
        if (cs[i]["step"]) {
          const int64_t step = ReadInt(cs[i]["step"], f + ".step");
          if (step < -1 || step >= static_cast<int64_t>(v.steps.size())) {
            throw ConfigError{f + ".step",
                              fmt::format("-1 (not started) to {} (the last step), got {}", v.steps.size() - 1, step)};
          }
          v.step = static_cast<int>(step);
        }
      } else {
        if (cs[i]["steps"] || cs[i]["step"]) throw ConfigError{f + ".steps", "steps only for mode canary"};
        if (!cs[i]["share"]) throw ConfigError{f + ".share", "the percent of traffic, 0 to 100"};
        v.share = ReadPercent(cs[i]["share"], f + ".share");
      }
      if (cs[i]["mirror"]) {
        if (v.mode == VariantMode::kShadow) {
          throw ConfigError{f + ".mirror", "no mirror for a shadow: its share is the copies it gets"};
        }
        v.mirror = ReadPercent(cs[i]["mirror"], f + ".mirror");
      }
      if (cs[i]["max_cpu"]) {
        const double max_cpu = ReadDouble(cs[i]["max_cpu"], f + ".max_cpu", 0, 64);
        if (!(max_cpu > 0)) {
          throw ConfigError{f + ".max_cpu",
                            fmt::format("a share of one core's time above 0 (at most 64), got {}", max_cpu)};
        }
        v.max_cpu = max_cpu;
      }
      spec.candidates.push_back(std::move(v));
    }
  }
  if (const YAML::Node fs = root["flags"]) {
    if (!fs.IsSequence()) throw ConfigError{"flags", "a list of flags, got " + Describe(fs)};
    RequireListSize(fs, "flags", kMaxFlags);
    std::set<std::string> flag_names;
    for (size_t i = 0; i < fs.size(); ++i) {
      const std::string f = "flags[" + std::to_string(i) + "]";
      RequireMap(fs[i], f, {"name", "variant", "rules"});
      Flag flag;
      if (!fs[i]["name"]) throw ConfigError{f + ".name", "a name for the flag"};
      flag.name = ReadString(fs[i]["name"], f + ".name");
      if (!ValidName(flag.name)) throw ConfigError{f + ".name", kNameRule};
      if (!flag_names.insert(flag.name).second) throw ConfigError{f + ".name", "a name used once"};
      if (!fs[i]["variant"]) throw ConfigError{f + ".variant", "the variant it sends matching requests to"};
      flag.variant = ReadString(fs[i]["variant"], f + ".variant");
      if (!fs[i]["rules"] || !fs[i]["rules"].IsSequence() || fs[i]["rules"].size() == 0) {
        throw ConfigError{f + ".rules", "a non-empty list of rules (all must match)"};
      }
      RequireListSize(fs[i]["rules"], f + ".rules", kMaxRulesPerFlag);
      for (size_t r = 0; r < fs[i]["rules"].size(); ++r)
        flag.rules.push_back(ReadRule(fs[i]["rules"][r], f + ".rules[" + std::to_string(r) + "]"));
      spec.flags.push_back(std::move(flag));
    }
  }
  if (root["kill_switch"]) spec.kill_switch = ReadBool(root["kill_switch"], "kill_switch");
  if (root["paused"]) spec.paused = ReadBool(root["paused"], "paused");
  if (const YAML::Node m = root["monitoring"]) {
    RequireMap(m, "monitoring", {"quality", "health", "alert_after", "resolve_after"});
    if (m["quality"]) spec.quality = ReadQualityRule(m["quality"], "monitoring.quality");
    if (m["health"]) spec.health = ReadHealthLimits(m["health"], "monitoring.health", false);
    for (auto [key, target] : {std::pair{"alert_after", &spec.alert_after}, {"resolve_after", &spec.resolve_after}}) {
      if (!m[key]) continue;
      const std::string f = std::string("monitoring.") + key;
      *target = ReadInt(m[key], f);
      if (*target < 1 || *target > 1000)
        throw ConfigError{f, "a number of windows from 1 to 1000, got " + std::to_string(*target)};
    }
  }
  if (root["rollout"]) spec.rollout = ReadRolloutPolicy(root["rollout"], "rollout");
  if (const YAML::Node o = root["overload"]) {
    RequireMap(o, "overload", {"slo_ms", "fallback", "shed_retry_after_s", "recover_after_s"});
    OverloadPolicy& p = spec.overload.emplace();
    if (o["slo_ms"]) p.slo_ms = ReadDouble(o["slo_ms"], "overload.slo_ms", 0.1, 600000);
    if (o["fallback"]) {
      p.fallback = ReadModelRef(o["fallback"], "overload.fallback", {});
      p.fallback->name = "fallback";
    }
    if (o["shed_retry_after_s"]) {
      p.shed_retry_after_s = ReadInt(o["shed_retry_after_s"], "overload.shed_retry_after_s");
      if (p.shed_retry_after_s < 1 || p.shed_retry_after_s > 3600)
        throw ConfigError{"overload.shed_retry_after_s",
                          "whole seconds from 1 to 3600, got " + std::to_string(p.shed_retry_after_s)};
    }
    if (o["recover_after_s"])
      p.recover_after_s = ReadDouble(o["recover_after_s"], "overload.recover_after_s", 0.1, 86400);
  }
  return spec;
}

std::string VersionText(const Variant& v) { return v.version ? " version " + std::to_string(v.version) : ""; }

}  // namespace

std::string_view VariantModeName(VariantMode mode) {
  switch (mode) {
    case VariantMode::kProduction:
      return "production";
    case VariantMode::kAb:
      return "ab";
    case VariantMode::kCanary:
      return "canary";
    case VariantMode::kShadow:
      return "shadow";
  }
  return "?";
}

double Variant::CurrentShare() const {
  if (mode == VariantMode::kCanary) return step < 0 ? 0 : steps[static_cast<size_t>(step)];
  return share;
}

double DeploymentSpec::ProductionShare() const {
  double share = 100;
  for (const Variant& c : candidates) {
    if (c.mode != VariantMode::kShadow) share -= c.CurrentShare();
  }
  return share;
}

double Variant::MaxShare() const {
  if (mode == VariantMode::kCanary) return steps.empty() ? 0 : steps.back();
  return share;
}

std::optional<Semver> ParseSemver(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  if (!text.empty() && (text.front() == 'v' || text.front() == 'V')) text.remove_prefix(1);
  if (auto plus = text.find('+'); plus != std::string_view::npos) text = text.substr(0, plus);  // build metadata
  Semver v;
  if (auto dash = text.find('-'); dash != std::string_view::npos) {
    v.prerelease = std::string(text.substr(dash + 1));
    if (v.prerelease.empty()) return std::nullopt;
    text = text.substr(0, dash);
  }
  int64_t* parts[3] = {&v.major, &v.minor, &v.patch};
  int n = 0;
  while (n < 3) {
    const size_t dot = text.find('.');
    const std::string_view part = text.substr(0, dot);
    if (part.empty() || part.size() > 15) return std::nullopt;
    int64_t x = 0;
    for (char c : part) {
      if (c < '0' || c > '9') return std::nullopt;
      x = x * 10 + (c - '0');
    }
    *parts[n++] = x;
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
    if (n == 3) return std::nullopt;  // a fourth part
  }
  return v;  // "2" and "2.3" are 2.0.0 and 2.3.0
}

int CompareSemver(const Semver& a, const Semver& b) {
  if (a.major != b.major) return a.major < b.major ? -1 : 1;
  if (a.minor != b.minor) return a.minor < b.minor ? -1 : 1;
  if (a.patch != b.patch) return a.patch < b.patch ? -1 : 1;
  if (a.prerelease == b.prerelease) return 0;
  if (a.prerelease.empty()) return 1;
  if (b.prerelease.empty()) return -1;
  return a.prerelease < b.prerelease ? -1 : 1;
}

const Variant* DeploymentSpec::Candidate(std::string_view name) const {
  for (const auto& c : candidates) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Variant* DeploymentSpec::Candidate(std::string_view name) {
  return const_cast<Variant*>(static_cast<const DeploymentSpec*>(this)->Candidate(name));
}

StatusOr<DeploymentSpec> ParseDeploymentSpec(std::string_view endpoint, std::string_view text) {
  const std::string name(endpoint);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument("deployment '" + name + "': not valid YAML or JSON: " + e.what());
  }
  try {
    return ParseTree(name, root);
  } catch (const ConfigError& e) {
    return InvalidArgument("deployment '" + name + "': field '" + e.field + "': expected " + e.expected);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("deployment '" + name + "': " + e.what());
  }
}

Status ValidateDeploymentSpec(const DeploymentSpec& spec, const ModelCatalog& catalog) {
  const std::string where = "deployment '" + spec.endpoint + "': ";
  if (catalog.is_model && catalog.is_model(spec.endpoint)) {
    return InvalidArgument(where +
                           "field 'endpoint': the name is already a model's; endpoints and models share "
                           "one namespace");
  }
  auto check = [&](const Variant& v, const std::string& field) -> Status {
    if (!catalog.check) return Status::Ok();
    const Status s = catalog.check(v.model, v.version);
    if (s.ok()) return s;
    return InvalidArgument(where + "field '" + field + "': model '" + v.model + "'" + VersionText(v) + ": " +
                           s.message());
  };
  VIGIL_RETURN_IF_ERROR(check(spec.production, "production"));
  double total = 0;
  std::string parts;
  std::map<std::pair<std::string, int64_t>, std::string> shadows;
  for (size_t i = 0; i < spec.candidates.size(); ++i) {
    const Variant& c = spec.candidates[i];
    const std::string field = "candidates[" + std::to_string(i) + "]";
    VIGIL_RETURN_IF_ERROR(check(c, field));
    if (c.mode == VariantMode::kShadow || c.mirror > 0) {
      auto [it, fresh] = shadows.emplace(std::make_pair(c.model, c.version), c.name);
      if (!fresh) {
        return InvalidArgument(where + "field '" + field + "': '" + c.name + "' and '" + it->second +
                               "' both shadow model '" + c.model + "'" + VersionText(c) +
                               " (a mirror counts as a shadow); one shadow per variant");
      }
      if (c.mode == VariantMode::kShadow) continue;
    }
    total += c.MaxShare();
    parts += fmt::format("{}{} {}%", parts.empty() ? "" : " + ", c.name, c.MaxShare());
  }
  if (total > 100 + 1e-9) {
    return InvalidArgument(where + "field 'candidates': shares sum to " + fmt::format("{}", total) + "% (" + parts +
                           "; a canary counts its last step), over 100");
  }
  for (size_t i = 0; i < spec.flags.size(); ++i) {
    const Flag& f = spec.flags[i];
    const std::string field = "flags[" + std::to_string(i) + "].variant";
    if (f.variant == "production") continue;
    const Variant* v = spec.Candidate(f.variant);
    if (!v) return InvalidArgument(where + "field '" + field + "': no candidate named '" + f.variant + "'");
    if (v->mode == VariantMode::kShadow) {
      return InvalidArgument(where + "field '" + field + "': '" + f.variant +
                             "' is a shadow, which never answers; a flag needs an ab or canary candidate");
    }
  }
  if (spec.overload && spec.overload->fallback)
    VIGIL_RETURN_IF_ERROR(check(*spec.overload->fallback, "overload.fallback"));
  if (spec.rollout) {
    const Variant* c = spec.Candidate(spec.rollout->candidate);
    if (!c) {
      return InvalidArgument(where + "field 'rollout.candidate': no candidate named '" + spec.rollout->candidate + "'");
    }
    if (c->mode == VariantMode::kShadow) {
      return InvalidArgument(where + "field 'rollout.candidate': '" + c->name +
                             "' is a shadow; a rollout moves an ab or canary candidate");
    }
    if (spec.rollout->shadow_first && c->mode != VariantMode::kCanary) {
      return InvalidArgument(where + "field 'rollout.shadow_first': '" + c->name +
                             "' is an ab candidate; the shadow stage ends at a canary's first step");
    }
  }
  return Status::Ok();
}

StatusOr<DeploymentSpec> LoadDeploymentSpec(std::string_view endpoint, std::string_view text,
                                            const ModelCatalog& catalog) {
  VIGIL_ASSIGN_OR_RETURN(DeploymentSpec spec, ParseDeploymentSpec(endpoint, text));
  VIGIL_RETURN_IF_ERROR(ValidateDeploymentSpec(spec, catalog));
  return spec;
}

namespace {

std::string SemverText(const FlagRule& r) {
  std::string op;
  switch (r.semver_op) {
    case RuleOp::kLt:
      op = "<";
      break;
    case RuleOp::kLe:
      op = "<=";
      break;
    case RuleOp::kGt:
      op = ">";
      break;
    case RuleOp::kGe:
      op = ">=";
      break;
    case RuleOp::kNotIn:
      op = "!=";
      break;
    default:
      op = "==";
  }
  std::string v = fmt::format("{}{}.{}.{}", op, r.semver.major, r.semver.minor, r.semver.patch);
  if (!r.semver.prerelease.empty()) v += "-" + r.semver.prerelease;
  return v;
}

const char* CompareText(RuleOp op) {
  switch (op) {
    case RuleOp::kLt:
      return "<";
    case RuleOp::kLe:
      return "<=";
    case RuleOp::kGt:
      return ">";
    default:
      return ">=";
  }
}

void WriteModelRef(SpecWriter& out, const Variant& v) {
  out.Key("model");
  out.String(v.model);
  if (v.version) {
    out.Key("version");
    out.Int(v.version);
  }
}

// Writes YAML: inline maps and lists in flow style.
class YamlSpecWriter final : public SpecWriter {
 public:
  void BeginMap(bool inline_map) override {
    if (inline_map) out_ << YAML::Flow;
    out_ << YAML::BeginMap;
  }
  void EndMap() override { out_ << YAML::EndMap; }
  void BeginList(bool inline_list) override {
    if (inline_list) out_ << YAML::Flow;
    out_ << YAML::BeginSeq;
  }
  void EndList() override { out_ << YAML::EndSeq; }
  void Key(const std::string& k) override { out_ << YAML::Key << k << YAML::Value; }
  void String(const std::string& v) override { out_ << v; }
  void Int(int64_t v) override { out_ << v; }
  void Double(double v) override { out_ << v; }
  void Bool(bool v) override { out_ << v; }
  std::string Text() const { return std::string(out_.c_str(), out_.size()) + "\n"; }

 private:
  YAML::Emitter out_;
};

}  // namespace

void WriteDeploymentSpec(const DeploymentSpec& spec, SpecWriter& out) {
  auto field = [&](const char* key) -> SpecWriter& {
    out.Key(key);
    return out;
  };
  out.BeginMap(false);
  field("endpoint").String(spec.endpoint);
  field("production").BeginMap(true);
  WriteModelRef(out, spec.production);
  out.EndMap();
  field("routing_key").BeginMap(true);
  field("parameter").String(spec.key_parameter);
  field("header").String(spec.key_header);
  out.EndMap();
  if (!spec.candidates.empty()) {
    field("candidates").BeginList(false);
    for (const auto& c : spec.candidates) {
      out.BeginMap(true);
      field("name").String(c.name);
      WriteModelRef(out, c);
      field("mode").String(std::string(VariantModeName(c.mode)));
      if (c.mode == VariantMode::kCanary) {
        field("steps").BeginList(true);
        for (double step : c.steps) out.Double(step);
        out.EndList();
        field("step").Int(c.step);
      } else {
        field("share").Double(c.share);
      }
      if (c.mirror > 0) field("mirror").Double(c.mirror);
      if (c.max_cpu) field("max_cpu").Double(*c.max_cpu);
      out.EndMap();
    }
    out.EndList();
  }
  if (!spec.flags.empty()) {
    field("flags").BeginList(false);
    for (const auto& f : spec.flags) {
      out.BeginMap(false);
      field("name").String(f.name);
      field("variant").String(f.variant);
      field("rules").BeginList(false);
      for (const auto& r : f.rules) {
        out.BeginMap(true);
        if (r.op == RuleOp::kPercent) {
          field("percent").Double(r.number);
          out.EndMap();
          continue;
        }
        if (!r.parameter.empty()) {
          field("parameter").String(r.parameter);
        } else {
          field("header").String(r.header);
        }
        switch (r.op) {
          case RuleOp::kIn:
          case RuleOp::kNotIn:
            field(r.op == RuleOp::kIn ? "in" : "not_in").BeginList(true);
            for (const auto& v : r.values) out.String(v);
            out.EndList();
            break;
          case RuleOp::kEq:
            field("eq").String(r.values.at(0));
            break;
          case RuleOp::kSemver:
            field("semver").String(SemverText(r));
            break;
          case RuleOp::kRegex:
            field("regex").String(r.pattern);
            break;
          default:
            field("op").String(CompareText(r.op));
            field("value").Double(r.number);
        }
        out.EndMap();
      }
      out.EndList();
      out.EndMap();
    }
    out.EndList();
  }
  field("kill_switch").Bool(spec.kill_switch);
  field("paused").Bool(spec.paused);
  if (spec.quality || spec.health || spec.alert_after || spec.resolve_after) {
    field("monitoring").BeginMap(false);
    if (const auto& q = spec.quality) {
      field("quality").BeginMap(true);
      field("metric").String(q->metric);
      if (!std::isnan(q->below)) field("below").Double(q->below);
      if (!std::isnan(q->drop)) field("drop").Double(q->drop);
      field("window_s").Int(q->window_s);
      field("min_labels").Int(q->min_labels);
      out.EndMap();
    }
    if (const auto& h = spec.health) {
      field("health").BeginMap(true);
      if (!std::isnan(h->latency_p99_ms)) field("latency_p99_ms").Double(h->latency_p99_ms);
      field("error_rate").Double(h->error_rate);
      field("min_requests").Int(h->min_requests);
      out.EndMap();
    }
    if (spec.alert_after) field("alert_after").Int(spec.alert_after);
    if (spec.resolve_after) field("resolve_after").Int(spec.resolve_after);
    out.EndMap();
  }
  if (spec.rollout) {
    field("rollout");
    WriteRolloutPolicy(*spec.rollout, out);
  }
  if (const auto& o = spec.overload) {
    field("overload").BeginMap(false);
    field("slo_ms").Double(o->slo_ms);
    if (o->fallback) {
      field("fallback").BeginMap(true);
      WriteModelRef(out, *o->fallback);
      out.EndMap();
    }
    field("shed_retry_after_s").Int(o->shed_retry_after_s);
    field("recover_after_s").Double(o->recover_after_s);
    out.EndMap();
  }
  out.EndMap();
}

std::string DeploymentSpecToYaml(const DeploymentSpec& spec) {
  YamlSpecWriter out;
  WriteDeploymentSpec(spec, out);
  return out.Text();
}

}  // namespace vigil
