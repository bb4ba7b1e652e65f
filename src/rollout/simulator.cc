#include "rollout/simulator.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "rollout/controller.h"

namespace vigil {
namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Synthetic arms behind a real spec: what the controller reads is what
// the units brought since the step began.
class SimWorld final : public RolloutWorld {
 public:
  SimWorld(const SimulationOptions& o, uint64_t seed) : o_(o), rng_(seed) {
    auto spec = std::make_shared<DeploymentSpec>();
    spec->endpoint = "sim";
    spec->production.name = "production";
    spec->production.model = "m";
    spec->production.version = 1;
    Variant c;
    c.name = "candidate";
    c.model = "m";
    c.version = 2;
    c.mode = VariantMode::kCanary;
    c.steps = o.shares;
    spec->candidates.push_back(std::move(c));
    spec->rollout = o.policy;
    spec->rollout->candidate = "candidate";
    spec_ = spec;
  }

  std::vector<Endpoint> Endpoints() override {
    Endpoint e{.spec = spec_, .counts = {}, .generation = generation_};
    e.counts["production"] = {.requests = requests_[0], .errors = 0};
    e.counts["candidate"] = {.requests = requests_[1], .errors = 0};
    return {e};
  }

  StepData Read(const DeploymentSpec&, const RolloutPolicy& policy, int64_t, int64_t, std::optional<double>) override {
    // What χ² alone would have said at this look, for the record.
    if (sums_[0].units >= policy.min_units && sums_[1].units >= policy.min_units) {
      const double share = spec_->Candidate("candidate")->CurrentShare();
      const double observed[] = {static_cast<double>(sums_[0].units), static_cast<double>(sums_[1].units)};
      const double shares[] = {100 - share, share};
      chi2_flagged_ = chi2_flagged_ || SampleRatioMismatch(observed, shares).p < policy.srm_p;
    }
    StepData d;
    d.production.metric = sums_[0];
    d.candidate.metric = sums_[1];
    d.production.predictions = static_cast<int64_t>(sums_[0].n);
    d.candidate.predictions = static_cast<int64_t>(sums_[1].n);
    d.label_cutoff_s = 0;
    return d;
  }

  Status Apply(const std::string&, const RolloutAction& action, const std::string&, const std::string&) override {
    DeploymentSpec next = *spec_;
    VIGIL_RETURN_IF_ERROR(ApplyRolloutAction(next, action));
    spec_ = std::make_shared<const DeploymentSpec>(std::move(next));
    // A new spec: the step's data and the frontend's counters start again.
    sums_[0] = sums_[1] = UnitSums{};
    requests_[0] = requests_[1] = 0;
    ++generation_;
    return Status::Ok();
  }

  StatusOr<ShadowComparison> CompareShadow(const DeploymentSpec&, const std::string&, int64_t, int64_t) override {
    return FailedPrecondition("the simulator has no shadow stage");
  }

  // Units arriving over `seconds` at the current share.
  void Arrive(double seconds) {
    const Variant* c = spec_->Candidate("candidate");
    const double share = c ? c->CurrentShare() / 100 : 0;
    std::poisson_distribution<int64_t> arrivals(o_.units_per_day * seconds / 86400);
    const int64_t n = arrivals(rng_);
    std::bernoulli_distribution to_candidate(share);
    std::poisson_distribution<int> extra(std::max(0.0, o_.predictions_per_unit - 1));
    std::normal_distribution<double> unit_effect(0, o_.unit_sd > 0 ? o_.unit_sd : 1);
    std::normal_distribution<double> noise(0, o_.sd);
    std::uniform_real_distribution<double> uniform(0, 1);
    for (int64_t i = 0; i < n; ++i) {
      const int arm = to_candidate(rng_) ? 1 : 0;
      const int predictions = 1 + (o_.predictions_per_unit > 1 ? extra(rng_) : 0);
      const double u = o_.unit_sd > 0 ? unit_effect(rng_) : 0;
      const double base = o_.baseline + (arm ? o_.effect : 0);
      double mean = base;
      if (o_.bernoulli) {
        const double logit = std::log(base / (1 - base)) + u;
        mean = 1 / (1 + std::exp(-logit));
      } else {
        mean += u;
      }
      double y = 0, yy = 0;
      for (int k = 0; k < predictions; ++k) {
        const double v = o_.bernoulli ? (uniform(rng_) < mean ? 1.0 : 0.0) : mean + noise(rng_);
        if (o_.per_request) {
          sums_[arm].Add(v, 1, v * v);
        } else {
          y += v;
          yy += v * v;
        }
      }
      if (!o_.per_request) sums_[arm].Add(y, predictions, yy);
      requests_[arm] += static_cast<uint64_t>(predictions);
      total_units_ += 1;
    }
  }

  double total_units() const { return total_units_; }
  bool chi2_flagged() const { return chi2_flagged_; }

 private:
  const SimulationOptions& o_;
  std::mt19937_64 rng_;
  std::shared_ptr<const DeploymentSpec> spec_;
  UnitSums sums_[2];
  uint64_t requests_[2] = {0, 0};
  int64_t generation_ = 1;
  double total_units_ = 0;
  bool chi2_flagged_ = false;
};

}  // namespace

StatusOr<SimulationResult> Simulate(const SimulationOptions& o, const std::function<void(int)>& progress) {
  if (o.experiments < 1 || o.experiments > 100000) return InvalidArgument("experiments: 1 to 100000");
  if (o.bernoulli && !(o.baseline > 0 && o.baseline < 1 && o.baseline + o.effect > 0 && o.baseline + o.effect < 1)) {
    return InvalidArgument("baseline and effect: rates in (0, 1)");
  }
  if (!(o.units_per_day > 0 && o.units_per_day <= 1e8)) return InvalidArgument("units per day: up to 1e8");
  if (!(o.predictions_per_unit >= 1 && o.predictions_per_unit <= 1000)) {
    return InvalidArgument("predictions per unit: 1 to 1000");
  }
  if (o.shares.empty()) return InvalidArgument("shares: at least one step");
  SimulationOptions opts = o;
  opts.policy.metric.name = o.bernoulli ? "accuracy" : "mean_reward";
  opts.policy.metric.higher_is_better = true;
  opts.policy.error_rate_margin.reset();  // the simulated arms never fail a request
  opts.policy.latency_p99_margin_ms.reset();
  opts.policy.shadow_first.reset();  // it has no shadow copies
  // Thousands of analyses a second: the log would be the run's cost.
  const spdlog::level::level_enum level = spdlog::get_level();
  spdlog::set_level(spdlog::level::warn);
  struct Restore {
    spdlog::level::level_enum level;
    ~Restore() { spdlog::set_level(level); }
  } restore{level};
  SimulationResult r;
  r.experiments = o.experiments;
  const int64_t interval_ms = opts.policy.interval_s * 1000;
  for (int x = 0; x < o.experiments; ++x) {
    SimWorld world(opts, o.seed * 1'000'003 + static_cast<uint64_t>(x));
    auto store = MemoryRolloutStore(4);
    FakeWallClock clock(0);
    VIGIL_ASSIGN_OR_RETURN(auto controller, RolloutController::Create({.world = &world,
                                                                       .store = store.get(),
                                                                       .clock = &clock,
                                                                       .alerts = nullptr,
                                                                       .registry = nullptr,
                                                                       .background = false}));
    controller->Tick(clock.NowMillis());  // starts the first step
    RolloutPhase phase = RolloutPhase::kProgressing;
    bool srm = false;
    while (clock.NowMillis() < static_cast<int64_t>(o.max_days * 86400e3)) {
      world.Arrive(static_cast<double>(opts.policy.interval_s));
      clock.Advance(interval_ms);
      controller->Tick(clock.NowMillis());
      VIGIL_ASSIGN_OR_RETURN(auto view, controller->Get("sim", 0));
      phase = view.state.phase;
      if (phase == RolloutPhase::kSuccessful || phase == RolloutPhase::kFailed ||
          phase == RolloutPhase::kInconclusive) {
        srm = view.state.reason.rfind("sample ratio mismatch", 0) == 0;
        break;
      }
    }
    switch (phase) {
      case RolloutPhase::kSuccessful:
        ++r.promoted;
        break;
      case RolloutPhase::kFailed:
        ++r.rolled_back;
        break;
      case RolloutPhase::kInconclusive:
        ++r.inconclusive;
        break;
      default:
        ++r.undecided;
    }
    r.sample_ratio_flags += srm;
    r.chi2_flags += world.chi2_flagged();
    if (phase == RolloutPhase::kSuccessful || phase == RolloutPhase::kFailed) {
      r.decision_units.push_back(world.total_units());
      r.decision_days.push_back(static_cast<double>(clock.NowMillis()) / 86400e3);
    }
    if (progress) progress(x + 1);
  }
  r.median_units = Median(r.decision_units);
  r.median_days = Median(r.decision_days);
  return r;
}

}  // namespace vigil
