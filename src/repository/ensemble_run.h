// Running one request through an ensemble: its rows go once to each member,
// on the member's own scheduler (batched there with the member's other
// traffic), with the request's own deadline, priority and cancellation. A
// member that is not ready, does not fit the ensemble, is shed by its
// admission (it cannot answer before the deadline), times out or fails is
// left out; when the last member has answered, those that did are combined
// if at least `min_members` did, else the request fails with each member's
// reason. With a timer and a deadline, the request does not wait past its
// deadline for a member that was admitted but overran (Clipper's way): just
// before the deadline it answers with the members that have returned, if
// `min_members` have, else fails; the others are left out as `late` and
// cancelled, so a queued one is dropped unrun.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/deadline_timer.h"
#include "core/status.h"
#include "repository/model_version.h"

namespace vigil {

struct EnsembleAnswer {
  Status status;
  Tensor output;                      // the combined output, when ok
  std::vector<std::string> answered;  // "model:version" of the members combined, in member order
  std::vector<std::string> left_out;  // "model:version (reason)" of the others
};

struct EnsembleRunOptions {
  // How each member's request is enqueued (kQueueOnly inside a batch scope);
  // `queued` is told each member version a request was left queued on.
  Scheduler::EnqueueMode mode = Scheduler::EnqueueMode::kRunIfIdle;
  std::function<void(std::shared_ptr<ModelVersion>)> queued = nullptr;
  const Clock* clock = SystemClock::Get();
  // Answers at the deadline (less kEnsembleAnswerMargin) with the members
  // that have returned; null: waits for every member.
  DeadlineTimer* timer = nullptr;
};

// How long before its deadline an ensemble answers with the members it has:
// the time to combine and send the answer, so it still arrives in time.
inline constexpr Micros kEnsembleAnswerMargin{1000};

// `request` is bound to the ensemble's config (BindInputs) and carries the
// deadline, priority, cancel token and `monitored`; its `done` is not used.
// `done` is called exactly once, on a member's scheduler thread or on this
// one. The ensemble's own counters and drift monitor are updated here.
// Pins a READY version of a member (ModelRepository::Acquire).
using AcquireVersion =
    std::function<StatusOr<std::shared_ptr<ModelVersion>>(const std::string& model, int64_t version)>;

void RunEnsemble(const AcquireVersion& acquire, std::shared_ptr<ModelVersion> ensemble,
                 std::unique_ptr<InferenceRequest> request, const EnsembleRunOptions& options,
                 std::function<void(EnsembleAnswer&&)> done);

}  // namespace vigil
