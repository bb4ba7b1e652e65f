// Rollout: the actions that move traffic between an endpoint's production
// model and its candidates, as transitions of one explicit state machine
// over the endpoint's spec. The admin API (and, next, the rollout
// controller) decide *that* an action happens; this says *whether* it may
// and *what* it changes. Pure functions over a DeploymentSpec copy; the
// caller validates and publishes the result (Deployments::Mutate).
//
// A candidate's state, from its spec:
//
//   shadow      sees copies of traffic, answers none          (mode: shadow)
//   waiting     may take traffic but takes none: a canary before its first
//               step or an ab candidate at share 0           (step -1 / share 0)
//   progressing takes a share of traffic                      (step >= 0 / share > 0)
//
// and the endpoint is `paused` or not. The transitions and their
// preconditions (an action whose precondition fails changes nothing and
// says which one failed):
//
//   action                 from               to             precondition
//   set_weight(c, w)       waiting|progressing  by w          not paused; c not a shadow; w in range
//   promote(c)             waiting|progressing  (c is production) not paused; c not a shadow
//   mirror(c, m)           waiting|progressing  copies m%     c not a shadow; m in range (the shadow stage)
//   rollback(c | all)      any                waiting        none: a rollback is never refused (its mirror goes too)
//   pause                  not paused         paused         none (pausing twice is a no-op)
//   resume                 paused             not paused     none (resuming twice is a no-op)
//
// "paused" stops every change of weight, by people and by the controller,
// until resumed; a rollback still goes through, so a bad model can always
// leave.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "routing/deployment_spec.h"

namespace vigil {

enum class CandidateState { kShadow, kWaiting, kProgressing };
std::string_view CandidateStateName(CandidateState state);
CandidateState StateOf(const Variant& candidate);

struct RolloutAction {
  enum class Kind { kSetWeight, kPromote, kRollback, kPause, kResume, kMirror };
  Kind kind = Kind::kPause;
  // The candidate; for promote, empty = the only ab/canary candidate; for
  // rollback, empty = every candidate.
  std::string candidate{};
  std::optional<int> step{};      // set_weight of a canary: an index into its steps, -1 = none
  std::optional<double> share{};  // set_weight of an ab candidate, mirror: percent
};
std::string_view RolloutActionName(RolloutAction::Kind kind);

// Applies `action` to `spec` when its preconditions hold. Errors: NotFound
// (no such candidate), FailedPrecondition (paused, a shadow, no single
// candidate to promote), InvalidArgument (a step or share out of range; the
// message names `step` or `share`).
Status ApplyRolloutAction(DeploymentSpec& spec, const RolloutAction& action);

// "step 2/4 (25%)", "share 10%", "waiting (step 0/4)", "shadow 5%": how
// status shows where a candidate stands.
std::string DescribeCandidate(const Variant& candidate);

}  // namespace vigil
