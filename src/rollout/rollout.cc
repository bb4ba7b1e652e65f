#include "rollout/rollout.h"

#include <fmt/format.h>

#include <algorithm>

namespace vigil {

std::string_view CandidateStateName(CandidateState state) {
  switch (state) {
    case CandidateState::kShadow:
      return "shadow";
    case CandidateState::kWaiting:
      return "waiting";
    case CandidateState::kProgressing:
      return "progressing";
  }
  return "?";
}

CandidateState StateOf(const Variant& c) {
  if (c.mode == VariantMode::kShadow) return CandidateState::kShadow;
  return c.CurrentShare() > 0 ? CandidateState::kProgressing : CandidateState::kWaiting;
}

std::string_view RolloutActionName(RolloutAction::Kind kind) {
  switch (kind) {
    case RolloutAction::Kind::kSetWeight:
      return "weight";
    case RolloutAction::Kind::kPromote:
      return "promote";
    case RolloutAction::Kind::kRollback:
      return "rollback";
    case RolloutAction::Kind::kPause:
      return "pause";
    case RolloutAction::Kind::kResume:
      return "resume";
    case RolloutAction::Kind::kMirror:
      return "mirror";
  }
  return "?";
}

namespace {

StatusOr<Variant*> Find(DeploymentSpec& spec, const std::string& name, std::string_view what) {
  Variant* c = spec.Candidate(name);
  if (!c) return NotFound(fmt::format("{}: endpoint '{}' has no candidate '{}'", what, spec.endpoint, name));
  return c;
}

Status RefuseWhilePaused(const DeploymentSpec& spec, std::string_view what) {
  if (!spec.paused) return Status::Ok();
  return FailedPrecondition(fmt::format(
      "{}: endpoint '{}' is paused, which stops every weight change; resume it first (a rollback still works)", what,
      spec.endpoint));
}

// The only ab/canary candidate, for a promote that names none.
StatusOr<std::string> OnlyCandidate(const DeploymentSpec& spec, std::string_view what) {
  std::string only;
  int n = 0;
  for (const auto& c : spec.candidates) {
    if (c.mode != VariantMode::kShadow) {
      only = c.name;
      ++n;
    }
  }
  if (n != 1) {
    return InvalidArgument(
        fmt::format("{}: endpoint '{}' has {} ab/canary candidates; name the one to {}", what, spec.endpoint, n, what));
  }
  return only;
}

Status SetWeight(DeploymentSpec& spec, const RolloutAction& a) {
  constexpr std::string_view what = "weight";
  VIGIL_ASSIGN_OR_RETURN(Variant * c, Find(spec, a.candidate, what));
  VIGIL_RETURN_IF_ERROR(RefuseWhilePaused(spec, what));
  if (c->mode == VariantMode::kShadow) {
    return FailedPrecondition(fmt::format("weight: '{}' is a shadow; it answers no traffic", c->name));
  }
  if (c->mode == VariantMode::kCanary) {
    if (!a.step) {
      return InvalidArgument(fmt::format("weight: canary '{}' moves by step (an index into its steps, -1 to {})",
                                         c->name, static_cast<int>(c->steps.size()) - 1));
    }
    if (*a.step < -1 || *a.step >= static_cast<int>(c->steps.size())) {
      return InvalidArgument(
          fmt::format("weight: step must be -1 to {}, got {}", static_cast<int>(c->steps.size()) - 1, *a.step));
    }
    c->step = *a.step;
    return Status::Ok();
  }
  if (!a.share) return InvalidArgument(fmt::format("weight: '{}' moves by share (percent, 0 to 100)", c->name));
  if (!(*a.share >= 0 && *a.share <= 100)) {
    return InvalidArgument(fmt::format("weight: share must be 0 to 100, got {}", *a.share));
  }
  c->share = *a.share;
  return Status::Ok();
}

Status Promote(DeploymentSpec& spec, const RolloutAction& a) {
  constexpr std::string_view what = "promote";
  std::string name = a.candidate;
  if (name.empty()) {
    VIGIL_ASSIGN_OR_RETURN(name, OnlyCandidate(spec, what));
  }
  VIGIL_ASSIGN_OR_RETURN(Variant * found, Find(spec, name, what));
  VIGIL_RETURN_IF_ERROR(RefuseWhilePaused(spec, what));
  const Variant c = *found;
  if (c.mode == VariantMode::kShadow) {
    return InvalidArgument("promote: '" + name + "' is a shadow; make it ab or canary first");
  }
  spec.production.model = c.model;
  spec.production.version = c.version;
  std::erase_if(spec.candidates, [&](const Variant& v) { return v.name == name; });
  std::erase_if(spec.flags, [&](const Flag& f) { return f.variant == name; });
  // Its rollout is over: the block that named it goes with it.
  if (spec.rollout && spec.rollout->candidate == name) spec.rollout.reset();
  return Status::Ok();
}

Status Rollback(DeploymentSpec& spec, const RolloutAction& a) {
  if (!a.candidate.empty()) {
    VIGIL_RETURN_IF_ERROR(Find(spec, a.candidate, "rollback").status());
  }
  // The share to 0 at once; the candidate stays loaded (and in the spec).
  for (auto& c : spec.candidates) {
    if (!a.candidate.empty() && c.name != a.candidate) continue;
    if (c.mode == VariantMode::kCanary) c.step = -1;
    if (c.mode == VariantMode::kAb) c.share = 0;
    c.mirror = 0;
  }
  return Status::Ok();
}

Status Mirror(DeploymentSpec& spec, const RolloutAction& a) {
  VIGIL_ASSIGN_OR_RETURN(Variant * c, Find(spec, a.candidate, "mirror"));
  if (c->mode == VariantMode::kShadow) {
    return FailedPrecondition("mirror: '" + c->name + "' is a shadow already (its share is what it gets)");
  }
  if (!a.share || !(*a.share >= 0 && *a.share <= 100)) {
    return InvalidArgument("mirror: share must be 0 to 100");
  }
  c->mirror = *a.share;
  return Status::Ok();
}

}  // namespace

Status ApplyRolloutAction(DeploymentSpec& spec, const RolloutAction& action) {
  switch (action.kind) {
    case RolloutAction::Kind::kSetWeight:
      return SetWeight(spec, action);
    case RolloutAction::Kind::kPromote:
      return Promote(spec, action);
    case RolloutAction::Kind::kRollback:
      return Rollback(spec, action);
    case RolloutAction::Kind::kPause:
      spec.paused = true;
      return Status::Ok();
    case RolloutAction::Kind::kResume:
      spec.paused = false;
      return Status::Ok();
    case RolloutAction::Kind::kMirror:
      return Mirror(spec, action);
  }
  return InvalidArgument("unknown rollout action");
}

std::string DescribeCandidate(const Variant& c) {
  switch (c.mode) {
    case VariantMode::kShadow:
      return fmt::format("shadow {}%", c.share);
    case VariantMode::kAb:
      return fmt::format("share {}%", c.share);
    case VariantMode::kCanary:
      if (c.step < 0) {
        return c.mirror > 0 ? fmt::format("shadow stage {}% (step 0/{})", c.mirror, c.steps.size())
                            : fmt::format("waiting (step 0/{})", c.steps.size());
      }
      return fmt::format("step {}/{} ({}%)", c.step + 1, c.steps.size(), c.steps[c.step]);
    case VariantMode::kProduction:
      break;
  }
  return "production";
}

}  // namespace vigil
