#include "routing/router.h"

#include <cmath>
#include <cstdlib>
#include <random>

#include <re2/re2.h>

#include "core/hash.h"

namespace vigil {
namespace {

uint32_t RandomBucket() {
  thread_local std::mt19937 rng(std::random_device{}());
  return static_cast<uint32_t>(rng() % kBuckets);
}

std::optional<double> ParseNumber(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

bool Compare(RuleOp op, int cmp) {
  switch (op) {
    case RuleOp::kLt:
      return cmp < 0;
    case RuleOp::kLe:
      return cmp <= 0;
    case RuleOp::kGt:
      return cmp > 0;
    case RuleOp::kGe:
      return cmp >= 0;
    case RuleOp::kNotIn:
      return cmp != 0;
    default:
      return cmp == 0;
  }
}

}  // namespace

uint32_t ShareToBuckets(double percent) {
  return static_cast<uint32_t>(std::llround(std::clamp(percent, 0.0, 100.0) * (kBuckets / 100.0)));
}

Router::Router(std::shared_ptr<const DeploymentSpec> spec, const Router* previous, int64_t since_unix_ms)
    : spec_(std::move(spec)),
      stats_(std::make_unique<VariantStats[]>(spec_->candidates.size() + 1)),
      since_(since_unix_ms > 0 ? std::chrono::system_clock::time_point(std::chrono::milliseconds(since_unix_ms))
                               : std::chrono::system_clock::now()) {
  if (const auto& o = spec_->overload) {
    const auto& before = previous ? previous->spec().overload : std::nullopt;
    auto same_model = [](const std::optional<Variant>& a, const std::optional<Variant>& b) {
      return a.has_value() == b.has_value() && (!a || (a->model == b->model && a->version == b->version));
    };
    if (previous && previous->ladder_ && before && before->slo_ms == o->slo_ms &&
        before->shed_retry_after_s == o->shed_retry_after_s && before->recover_after_s == o->recover_after_s &&
        same_model(before->fallback, o->fallback)) {
      ladder_ = previous->ladder_;
    } else {
      ladder_ = std::make_shared<OverloadLadder>(*o, SystemClock::Get()->Now());
    }
  }
  split_salt_ = "split:" + spec_->endpoint;
  uint32_t next = 0;
  for (size_t i = 0; i < spec_->candidates.size(); ++i) {
    const Variant& c = spec_->candidates[i];
    if (c.mode == VariantMode::kShadow || c.mirror > 0) {
      shadow_salts_.push_back({static_cast<int>(i), "shadow:" + spec_->endpoint + ":" + c.name,
                               ShareToBuckets(c.mode == VariantMode::kShadow ? c.share : c.mirror)});
      if (c.mode == VariantMode::kShadow) continue;
    }
    const uint32_t width = ShareToBuckets(c.MaxShare());
    const uint32_t now = std::min(width, ShareToBuckets(c.CurrentShare()));
    regions_.push_back({static_cast<int>(i), next, std::min(kBuckets, next + now)});
    next = std::min(kBuckets, next + width);
  }
  for (const auto& f : spec_->flags) flag_salts_.push_back("flag:" + spec_->endpoint + ":" + f.name);
}

uint32_t Router::Bucket(const std::string& salt, const std::string* key) const {
  return key ? StickyBucket(salt, *key) : RandomBucket();
}

bool Router::Matches(const FlagRule& rule, const std::string& flag_salt, const RouteInput& in,
                     const std::string* key) const {
  if (rule.op == RuleOp::kPercent) return Bucket(flag_salt, key) < ShareToBuckets(rule.number);
  std::optional<std::string> value;
  if (!rule.parameter.empty()) {
    if (in.parameter) value = in.parameter(rule.parameter);
  } else if (in.header) {
    value = in.header(rule.header);
  }
  // A missing attribute matches no rule, and neither does one too long to
  // test cheaply.
  if (!value || value->size() > kMaxRuleInputBytes) return false;
  switch (rule.op) {
    case RuleOp::kIn:
      return std::find(rule.values.begin(), rule.values.end(), *value) != rule.values.end();
    case RuleOp::kNotIn:
      return std::find(rule.values.begin(), rule.values.end(), *value) == rule.values.end();
    case RuleOp::kEq:
      return !rule.values.empty() && *value == rule.values[0];
    case RuleOp::kLt:
    case RuleOp::kLe:
    case RuleOp::kGt:
    case RuleOp::kGe: {
      const auto x = ParseNumber(*value);
      return x && Compare(rule.op, *x < rule.number ? -1 : (*x > rule.number ? 1 : 0));
    }
    case RuleOp::kSemver: {
      const auto v = ParseSemver(*value);
      return v && Compare(rule.semver_op, CompareSemver(*v, rule.semver));
    }
    case RuleOp::kRegex:
      return rule.regex && RE2::FullMatch(*value, *rule.regex);
    default:
      return false;
  }
}

RouteDecision Router::Route(const RouteInput& in) const {
  const DeploymentSpec& s = *spec_;
  RouteDecision d;
  if (in.parameter) {
    if (auto v = in.parameter(s.key_parameter); v && !v->empty()) d.key = std::move(*v);
  }
  if (d.key.empty() && in.header) {
    if (auto v = in.header(s.key_header); v && !v->empty()) d.key = std::move(*v);
  }
  d.keyed = !d.key.empty();
  const std::string* key = d.keyed ? &d.key : nullptr;
  if (s.kill_switch) {
    d.reason = "kill_switch";
    return d;
  }
  for (const ShadowCopy& c : shadow_salts_) {
    if (Bucket(c.salt, key) < c.buckets) d.shadows.push_back(c.index);
  }
  for (size_t f = 0; f < s.flags.size(); ++f) {
    const Flag& flag = s.flags[f];
    bool all = true;
    for (const auto& rule : flag.rules) {
      if (!Matches(rule, flag_salts_[f], in, key)) {
        all = false;
        break;
      }
    }
    if (!all) continue;
    d.reason = "flag:" + flag.name;
    if (flag.variant != "production") {
      for (size_t i = 0; i < s.candidates.size(); ++i) {
        if (s.candidates[i].name == flag.variant) d.variant = static_cast<int>(i);
      }
    }
    std::erase(d.shadows, d.variant);  // a mirrored candidate answering it needs no copy
    return d;
  }
  if (!regions_.empty()) {
    const uint32_t b = Bucket(split_salt_, key);
    for (const auto& r : regions_) {
      if (b >= r.begin && b < r.end) {
        d.variant = r.candidate;
        d.reason = "split";
        std::erase(d.shadows, d.variant);
        return d;
      }
    }
  }
  d.reason = "production";
  return d;
}

}  // namespace vigil
