// RolloutController: for every endpoint whose spec has a `rollout` block,
// one analysis per interval (rollout/analysis.h) and the action it calls
// for, applied through the same ApplyRolloutAction a person's action goes
// through — so `paused` stops the controller too.
//
// Phases (Argo Rollouts' names):
//
//   Progressing   at a step, analysing
//   Paused        the spec is paused (or its kill switch is on); analysis waits
//   Successful    promoted (or, with on_success: hold, held at the last step)
//   Failed        rolled back: share 0, still loaded
//   Inconclusive  held at its step for a person (never promoted silently)
//   Error         the data is missing; retried every interval, and after
//                 max_errors analyses in a row, Inconclusive
//
//   verdict        at a step before the last    at the last step
//   Successful     next step                    promote (or hold)
//   Failed         roll back                    roll back
//   Inconclusive   hold (or roll back)          hold (or roll back)
//   Error          retry                        retry
//
// A person's commands win over the controller: pause / resume (the spec's
// `paused`), promote (next step; full = to production), abort (roll back,
// Failed), retry (restart the analysis at the current step; after Failed,
// from the first step).
//
// Persisted before it acts: the state (phase, step, when the step began,
// the sequential tests' memory, the frontend's counts) is stored with the
// action it is about to take; a restart, even after kill -9, finishes that
// action and resumes at the same step. The step's predictions are re-read
// from the store on every analysis, so its counts are the store's.
//
// Thread-safe. The loop ("vigil-rollout") wakes every second and analyses
// the endpoints whose interval has passed; tests run Tick(now) with the
// thread off and a fake clock.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "monitoring/alerts.h"
#include "monitoring/metrics.h"
#include "rollout/analysis.h"
#include "rollout/rollout.h"
#include "rollout/shadow_comparison.h"
#include "routing/deployment_spec.h"
#include "store/store.h"

namespace vigil {

// What the controller sees and moves: the endpoints' specs with the
// frontend's counts per variant, the step's data, and the actions. The
// server's is ServingRolloutWorld (rollout/serving_rollout_world.h); tests
// and the simulator bring their own.
class RolloutWorld {
 public:
  virtual ~RolloutWorld() = default;
  struct Counts {
    uint64_t requests = 0, errors = 0;  // since the spec took effect (they restart with it, and with the process)
  };
  struct Endpoint {
    std::shared_ptr<const DeploymentSpec> spec;
    std::map<std::string, Counts> counts;  // by variant
    int64_t generation = 0;                // changes whenever the counts restart from zero
  };
  virtual std::vector<Endpoint> Endpoints() = 0;
  // The production and candidate predictions logged in [since_ms, now_ms),
  // per unit, with the label cut-off applied (requests and errors are the
  // controller's to fill).
  // `min_cutoff_s`: the longest label cut-off this rollout has used (the
  // first labels to arrive are the fast ones; the cut-off never shrinks).
  virtual StepData Read(const DeploymentSpec& spec, const RolloutPolicy& policy, int64_t since_ms, int64_t now_ms,
                        std::optional<double> min_cutoff_s) = 0;
  virtual Status Apply(const std::string& endpoint, const RolloutAction& action, const std::string& actor,
                       const std::string& detail) = 0;
  // The candidate's shadow copies (its mirror) against production's answers
  // to the same requests since `since_ms` (the shadow stage).
  virtual StatusOr<ShadowComparison> CompareShadow(const DeploymentSpec& spec, const std::string& candidate,
                                                   int64_t since_ms, int64_t now_ms) = 0;
};

enum class RolloutPhase { kProgressing, kPaused, kSuccessful, kFailed, kInconclusive, kError };
std::string_view RolloutPhaseName(RolloutPhase phase);
constexpr RolloutPhase kRolloutPhases[] = {RolloutPhase::kProgressing,  RolloutPhase::kPaused,
                                           RolloutPhase::kSuccessful,   RolloutPhase::kFailed,
                                           RolloutPhase::kInconclusive, RolloutPhase::kError};

struct RolloutState {
  std::string endpoint, candidate, model;
  int64_t version = 0;
  RolloutPhase phase = RolloutPhase::kProgressing;
  int step = 0;               // index into the candidate's steps (an ab candidate has one); -1 in the shadow stage
  bool shadow_stage = false;  // shadow_first: copies only, before the first step
  int steps = 1;              // how many
  double share = 0;           // the candidate's share at the step, percent
  int64_t started_ms = 0, step_started_ms = 0, updated_ms = 0;
  int64_t last_analysis_ms = 0;
  int64_t analyses = 0;  // at this step
  int64_t errors_in_a_row = 0;
  std::map<std::string, TestMemory> memory;  // the sequential tests at this step
  struct Count {
    uint64_t seen_requests = 0, seen_errors = 0;  // the frontend's counters when last read
    uint64_t requests = 0, errors = 0;            // at this step
  };
  std::map<std::string, Count> counts;   // "production", "candidate"
  int64_t counts_generation = 0;         // RolloutWorld::Endpoint::generation when last read
  std::optional<double> label_cutoff_s;  // the longest label cut-off used so far
  std::string reason;                    // why the phase, or what it waits for
  std::string last_verdict;              // of the last analysis
  // The action decided and persisted, not yet known to be applied.
  std::optional<RolloutAction> pending;
  std::string pending_detail;
};
std::string RolloutStateJson(const RolloutState& state);
StatusOr<RolloutState> ParseRolloutState(const std::string& json);

// A person's command.
enum class RolloutCommand { kPause, kResume, kPromote, kPromoteFull, kAbort, kRetry };
std::optional<RolloutCommand> ParseRolloutCommand(
    std::string_view name);  // pause, resume, promote, promote-full, abort, retry

class RolloutController {
 public:
  struct Options {
    RolloutWorld* world = nullptr;        // required
    RolloutStore* store = nullptr;        // required (MemoryRolloutStore() without --data-dir)
    WallClock* clock = nullptr;           // null = the system's
    AlertTracker* alerts = nullptr;       // RolloutFailed / RolloutInconclusive / RolloutPromoted; may be null
    MetricsRegistry* registry = nullptr;  // vigil_rollout_*; may be null
    bool background = true;               // false: no thread, Tick by hand
    // Replicas sharing a store: only the leader analyses and acts, each
    // decision written with its epoch (a deposed leader's is refused);
    // followers show the states the store holds. Null: this one decides.
    const Leadership* leadership = nullptr;
    // Among replicas, how long after a step changes the others may still
    // route by the previous spec (until their next store poll): predictions
    // in that time are left out of the step's analysis, or the split would
    // look biased. 0 on one machine.
    std::chrono::milliseconds settle{0};
  };
  static StatusOr<std::unique_ptr<RolloutController>> Create(Options options);
  ~RolloutController();  // Stop()
  // Stops the loop (an analysis under way finishes first); idempotent.
  void Stop() EXCLUDES(stop_mu_);

  // One pass over the endpoints: reconcile each with its spec, analyse
  // those whose interval has passed, act on the verdicts.
  void Tick(int64_t now_ms) EXCLUDES(mu_);

  // A person's command on `endpoint`'s rollout. Errors: NotFound (no
  // rollout there), FailedPrecondition (the command does not apply in this
  // phase, or the spec refuses it, e.g. promote while paused).
  Status Command(const std::string& endpoint, RolloutCommand command, const std::string& actor) EXCLUDES(mu_);

  struct View {
    RolloutState state;
    std::vector<StoredRolloutAnalysis> analyses;  // newest first
  };
  // The rollout of `endpoint` (NotFound when it has none) with its last
  // `analyses` analyses.
  StatusOr<View> Get(const std::string& endpoint, int analyses) EXCLUDES(mu_);

 private:
  explicit RolloutController(Options options);
  void Loop();
  // Brings `state` in line with the spec; false when there is no rollout to analyse now.
  bool Reconcile(const RolloutWorld::Endpoint& e, RolloutState& state, int64_t now_ms) REQUIRES(mu_);
  void Analyse(const RolloutWorld::Endpoint& e, RolloutState& state, int64_t now_ms) REQUIRES(mu_);
  void AnalyseShadowStage(const RolloutWorld::Endpoint& e, RolloutState& state, int64_t now_ms) REQUIRES(mu_);
  // The frontend's counts of production and the candidate at this step.
  std::pair<RolloutWorld::Counts, RolloutWorld::Counts> CountArms(const RolloutWorld::Endpoint& e, RolloutState& state,
                                                                  const std::string& candidate) REQUIRES(mu_);
  // Records one analysis (store, metrics, log).
  void Record(RolloutState& state, const Analysis& a, const std::string& evidence, int64_t now_ms) REQUIRES(mu_);
  // Starts the shadow stage: copies of `share`% of the requests.
  void StartShadowStage(RolloutState& state, double share, const std::string& why, int64_t now_ms) REQUIRES(mu_);
  // Persists `state` with `action` pending, applies it, persists again.
  Status Act(RolloutState& state, const RolloutAction& action, const std::string& actor, const std::string& detail)
      REQUIRES(mu_);
  void StartStep(RolloutState& state, int step, double share, int64_t now_ms) REQUIRES(mu_);
  // Among replicas, a write based on a state another replica has replaced
  // since is refused (Aborted) and that state adopted instead.
  Status Persist(RolloutState& state) REQUIRES(mu_);
  // Reads the stored states: all of them (`all`), or those written by
  // others after this replica's own last write (a person's command on
  // another replica).
  void Reload(bool all, int64_t now_ms) REQUIRES(mu_);
  void Publish(const RolloutState& state, int64_t now_ms) REQUIRES(mu_);

  RolloutWorld& world_;
  RolloutStore& store_;
  WallClock& clock_;
  AlertTracker* const alerts_;
  GaugeFamily* phase_gauge_ = nullptr;
  GaugeFamily* step_gauge_ = nullptr;
  CounterFamily* analyses_total_ = nullptr;
  Mutex mu_;
  std::map<std::string, RolloutState> states_ GUARDED_BY(mu_);
  const Leadership* const leadership_;
  const int64_t settle_ms_;                                    // Options::settle
  bool led_ GUARDED_BY(mu_) = true;                            // as of the last Tick
  int64_t deciding_epoch_ GUARDED_BY(mu_) = 0;                 // written beside decisions; 0 for a person's command
  std::map<std::string, int64_t> written_ms_ GUARDED_BY(mu_);  // this replica's last write per endpoint
  // Per endpoint, the stored state this replica last wrote or read: among
  // replicas a write is taken only while the store still holds it.
  std::map<std::string, std::string> written_state_ GUARDED_BY(mu_);
  Mutex stop_mu_;
  CondVar stop_cv_;
  bool stopping_ GUARDED_BY(stop_mu_) = false;
  std::thread thread_;
};

}  // namespace vigil
