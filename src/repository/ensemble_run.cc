#include "repository/ensemble_run.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <optional>

#include "core/thread_annotations.h"

namespace vigil {
namespace {

// The fixed word a member's failure is counted under.
std::string LeftOutReason(const Status& s) {
  switch (s.code()) {
    case StatusCode::kResourceExhausted:
      return "shed";
    case StatusCode::kDeadlineExceeded:
      return "timeout";
    case StatusCode::kNotFound:
    case StatusCode::kUnavailable:
      return "not_ready";
    case StatusCode::kInvalidArgument:
      return "incompatible";
    default:
      return "error";
  }
}

// One request's run through the members; shared by their completions and,
// with a deadline, the timer. Whichever comes first of the last member's
// answer and the deadline finishes it (`finished`); what arrives later is
// let go of.
struct Run {
  std::shared_ptr<ModelVersion> ensemble;
  std::unique_ptr<InferenceRequest> request;  // the ensemble's, inputs kept for monitoring
  const Clock* clock = nullptr;
  SteadyTime start;
  std::function<void(EnsembleAnswer&&)> done;
  std::vector<CancelToken> tokens;  // per member: what drops a late one unrun
  DeadlineTimer* timer = nullptr;
  DeadlineTimer::Id timer_id = 0;  // set before the last Release
  std::atomic<size_t> pending{0};
  Mutex mu;
  bool finished GUARDED_BY(mu) = false;
  std::vector<std::string> labels GUARDED_BY(mu);  // per member, "model:version" (the version that was pinned)
  std::vector<std::optional<Tensor>> outputs GUARDED_BY(mu);
  std::vector<Status> errors GUARDED_BY(mu);

  void Answer(size_t member, Status status, std::vector<Tensor> out) EXCLUDES(mu) {
    {
      MutexLock lock(mu);
      if (finished) {
        // Answered after the deadline's answer went: not combined.
      } else if (status.ok() && out.size() == 1) {
        outputs[member] = std::move(out[0]);
      } else {
        errors[member] = status.ok() ? Internal("the member answered without its output") : std::move(status);
      }
    }
    Release();
  }
  void Label(size_t member, std::string label) EXCLUDES(mu) {
    MutexLock lock(mu);
    labels[member] = std::move(label);
  }
  void Release() {
    if (pending.fetch_sub(1) == 1) Finish(false);
  }
  // The timer's: the deadline (less the margin) has come.
  void Expire() { Finish(true); }
  void Finish(bool at_deadline) EXCLUDES(mu);
};

void Run::Finish(bool at_deadline) {
  const ModelConfig& c = ensemble->config();
  EnsembleCounters& counters = *ensemble->ensemble();
  EnsembleAnswer answer;
  std::vector<MemberOutput> combined;
  std::vector<std::pair<StatusCode, std::string>> failures;
  std::vector<size_t> late;
  {
    MutexLock lock(mu);
    if (finished) return;
    finished = true;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i]) {
        combined.push_back({&*outputs[i], c.ensemble.members[i].weight});
        answer.answered.push_back(labels[i]);
        continue;
      }
      std::string reason;
      if (errors[i].ok()) {  // still running at the deadline
        late.push_back(i);
        errors[i] = DeadlineExceeded("did not answer before the request's deadline");
        reason = "late";
      } else {
        reason = LeftOutReason(errors[i]);
      }
      counters.LeftOut(labels[i], reason);
      answer.left_out.push_back(labels[i] + " (" + reason + ")");
      failures.emplace_back(errors[i].code(), labels[i] + ": " + errors[i].message());
    }
    const int64_t total_us = std::chrono::duration_cast<Micros>(clock->Now() - start).count();
    if (static_cast<int64_t>(combined.size()) >= c.ensemble.min_members) {
      auto out = CombineMemberOutputs(c.ensemble.combine, combined, c.outputs[0]);
      if (out.ok()) {
        answer.output = std::move(out).value();
        if (request->monitored && ensemble->monitor() && !request->inputs.empty())
          ensemble->monitor()->Observe(request->inputs[0], answer.output, request->rows);
        counters.Answered(request->rows, total_us, combined.size());
      } else {
        answer.status = out.status();
        counters.Failed(total_us, "backend");
      }
    } else {
      // Shed (429 with Retry-After) or timed out when every member was; else
      // Unavailable: the ensemble exists, its members could not serve it (a
      // member's NotFound is not the client's). The message names each reason.
      StatusCode code = failures.empty() ? StatusCode::kInternal : failures[0].first;
      std::string why;
      for (const auto& [fc, text] : failures) {
        if (fc != code) code = StatusCode::kUnavailable;
        why += (why.empty() ? "" : "; ") + text;
      }
      if (at_deadline) code = StatusCode::kDeadlineExceeded;  // the client's time is up whatever the reasons
      if (code != StatusCode::kResourceExhausted && code != StatusCode::kDeadlineExceeded)
        code = StatusCode::kUnavailable;
      answer.status =
          Status(code, fmt::format("ensemble '{}' version {}: {} of {} members answered, min_members is {}: {}", c.name,
                                   ensemble->version(), combined.size(), outputs.size(), c.ensemble.min_members, why));
      counters.Failed(total_us, code == StatusCode::kResourceExhausted  ? "shed"
                                : code == StatusCode::kDeadlineExceeded ? "timeout"
                                                                        : "members");
    }
  }
  // A late member still queued is dropped unrun; one running finishes and is let go of.
  for (size_t i : late) tokens[i].Cancel();
  if (!at_deadline && timer_id != 0) timer->Cancel(timer_id);
  auto respond = std::move(done);
  respond(std::move(answer));
}

// The member's inputs: the ensemble's, in the member's input order (names
// match: CheckEnsembleMember); the last member may take them.
std::vector<Tensor> MemberInputs(const ModelConfig& ensemble, const ModelConfig& member,
                                 const std::vector<Tensor>& inputs) {
  std::vector<Tensor> out;
  out.reserve(member.inputs.size());
  for (const TensorSpec& spec : member.inputs)
    out.push_back(inputs[static_cast<size_t>(ensemble.InputIndex(spec.name))]);
  return out;
}

}  // namespace

void RunEnsemble(const AcquireVersion& acquire, std::shared_ptr<ModelVersion> ensemble,
                 std::unique_ptr<InferenceRequest> request, const EnsembleRunOptions& options,
                 std::function<void(EnsembleAnswer&&)> done) {
  const ModelConfig& c = ensemble->config();
  const size_t n = c.ensemble.members.size();
  auto run = std::make_shared<Run>();
  run->ensemble = ensemble;
  run->clock = options.clock;
  run->start = options.clock->Now();
  run->done = std::move(done);
  {
    MutexLock lock(run->mu);
    run->labels.resize(n);
    run->outputs.resize(n);
    run->errors.resize(n);
  }
  ensemble->ensemble()->Begin();
  run->request = std::move(request);
  const InferenceRequest& r = *run->request;  // read-only from here on, by the timer too
  // One more than the members: the answer waits for this loop to end even
  // when every member answers inline.
  run->pending.store(n + 1);
  // A cancellable request cancels each member's own token (a token holds one
  // action: the member's scheduler wake-up); so does the deadline's answer,
  // for the members it leaves out.
  const bool timed = options.timer && r.deadline != SteadyTime::max();
  std::vector<CancelToken>& tokens = run->tokens;
  tokens.resize(n);
  if (r.cancel.cancellable() || timed) {
    for (auto& t : tokens) t = CancelToken::Create();
  }
  // Set before any member is asked: a member may run on this thread (an
  // idle instance, inline), and the deadline holds whatever it takes.
  if (timed) {
    const SteadyTime at = r.deadline - std::chrono::duration_cast<SteadyTime::duration>(kEnsembleAnswerMargin);
    run->timer = options.timer;
    run->timer_id = options.timer->At(std::max(at, run->start), [weak = std::weak_ptr<Run>(run)] {
      if (auto live = weak.lock()) live->Expire();
    });
  }
  for (size_t i = 0; i < n; ++i) {
    const EnsembleMember& m = c.ensemble.members[i];
    run->Label(i, m.model + ":" + (m.version ? std::to_string(m.version) : std::string("latest")));
    auto pinned = acquire(m.model, m.version);
    if (!pinned.ok()) {
      run->Answer(i, pinned.status(), {});
      continue;
    }
    std::shared_ptr<ModelVersion> mv = std::move(pinned).value();
    run->Label(i, m.model + ":" + std::to_string(mv->version()));
    Status fits = mv->scheduler() ? CheckEnsembleMember(c, i, mv->config())
                                  : InvalidArgument("ensemble member '" + m.model + "' is itself an ensemble");
    if (!fits.ok()) {
      run->Answer(i, fits, {});
      continue;
    }
    auto mr = std::make_unique<InferenceRequest>();
    mr->id = r.id;
    mr->inputs = MemberInputs(c, mv->config(), r.inputs);
    mr->rows = r.rows;
    mr->requested_outputs = {mv->config().OutputIndex(m.output)};
    mr->priority = r.priority;
    mr->deadline = r.deadline;
    mr->monitored = r.monitored;
    mr->cancel = tokens[i];
    mr->done = [run, i](InferenceResult&& result) {
      run->Answer(i, std::move(result.status), std::move(result.outputs));
    };
    Status enq = mv->scheduler()->Enqueue(mr, options.mode);
    if (!enq.ok()) {
      mr->done = nullptr;
      run->Answer(i, enq, {});
      continue;
    }
    if (options.mode == Scheduler::EnqueueMode::kQueueOnly && options.queued) options.queued(mv);
    tokens[i].OnCancel([weak = std::weak_ptr<ModelVersion>(mv)] {
      if (auto version = weak.lock()) version->scheduler()->Wake();
    });
  }
  if (r.cancel.cancellable()) {
    r.cancel.OnCancel([tokens] {
      for (const auto& t : tokens) t.Cancel();
    });
  }
  run->Release();
}

}  // namespace vigil
