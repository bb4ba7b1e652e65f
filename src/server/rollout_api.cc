// The rollout routes of AdminApi (admin_api.h lists them): the controller's
// state and analyses out, a person's commands in.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "net/http_target.h"
#include "protocol/json.h"
#include "protocol/json_writer.h"
#include "rollout/shadow_comparison.h"
#include "server/admin_api.h"
#include "server/http_replies.h"

namespace vigil {

namespace http = boost::beast::http;

HttpResponse AdminApi::RolloutView(const std::string& endpoint, int analyses) const {
  auto view = rollouts_.Get(endpoint, analyses);
  if (!view.ok()) {
    if (view.status().code() == StatusCode::kNotFound && !deployments_.Find(endpoint)) {
      return ErrorResponse(NotFound("no endpoint '" + endpoint + "'"));
    }
    return ErrorResponse(view.status());
  }
  const RolloutState& s = view->state;
  const int64_t now = WallClock::System()->NowMillis();
  JsonWriter j;
  j.StartObject();
  j.Field("endpoint", s.endpoint);
  j.Field("candidate", s.candidate);
  j.Field("model", s.model);
  j.Field("version", s.version);
  j.Field("phase", RolloutPhaseName(s.phase));
  j.Field("reason", s.reason);
  j.Field("step", s.step + 1);  // 0 in the shadow stage
  j.Field("steps", s.steps);
  j.Field("shadow_stage", s.shadow_stage);
  j.Field("share", s.share);
  const auto router = deployments_.Find(endpoint);
  const Variant* c = router ? router->spec().Candidate(s.candidate) : nullptr;
  j.Key("step_shares");
  j.StartArray();
  if (c) {
    for (double share : c->StepShares()) j.Double(share);
  }
  j.EndArray();
  if (const RolloutPolicy* policy = router && router->spec().rollout ? &*router->spec().rollout : nullptr) {
    j.Field("interval_s", policy->interval_s);
    j.Field("next_analysis_in_s",
            std::max<int64_t>(0, (s.last_analysis_ms + policy->interval_s * 1000 - now + 999) / 1000));
    j.Key("policy_metric");
    j.StartObject();
    j.Field("name", policy->metric.name);
    j.Field("direction", policy->metric.higher_is_better ? "higher" : "lower");
    j.Field("min_effect", policy->metric.min_effect);
    j.EndObject();
    j.Field("alpha", policy->alpha);
    if (policy->shadow_first) j.Field("shadow_first_share", policy->shadow_first->share);
  }
  j.Field("started_ms", s.started_ms);
  j.Field("step_started_ms", s.step_started_ms);
  j.Field("time_at_step_s", (now - s.step_started_ms) / 1000);
  j.Field("last_analysis_ms", s.last_analysis_ms);
  j.Field("analyses_at_step", s.analyses);
  j.Field("last_verdict", s.last_verdict);
  if (s.label_cutoff_s) j.Field("label_cutoff_s", *s.label_cutoff_s);
  j.Key("analyses");
  j.StartArray();
  for (const StoredRolloutAnalysis& a : view->analyses) {
    j.StartObject();
    j.Field("id", a.id);
    j.Field("time_ms", a.time_ms);
    j.Field("step", a.step + 1);
    j.Field("verdict", a.verdict);
    j.Field("epoch", a.epoch);  // the leader epoch that decided it (0: a person)
    j.Key("evidence");
    j.Raw(a.evidence);  // written by the controller with JsonWriter
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  return MakeResponse(200, j.Take());
}

void AdminApi::Rollout(const HttpRequest& request, const RequestInfo& info, const std::vector<std::string>& p,
                       const HttpServer::Responder& respond) {
  const std::string& endpoint = p[2];
  const std::string_view target(request.target().data(), request.target().size());
  if (p.size() == 4) {
    if (request.method() != http::verb::get) return respond(MethodNotAllowed(request, "GET"));
    auto analyses = IntQuery(QueryOf(target), "analyses", 10, 0, 100);
    if (!analyses.ok()) return respond(ErrorResponse(analyses.status()));
    return respond(RolloutView(endpoint, static_cast<int>(*analyses)));
  }
  if (p.size() != 5) return respond(ErrorResponse(NotFound("no route for " + std::string(target))));
  if (request.method() != http::verb::post) return respond(MethodNotAllowed(request, "POST"));
  // The caller was authorised for control by Handle.
  std::optional<RolloutCommand> command = ParseRolloutCommand(p[4]);
  if (!command || *command == RolloutCommand::kPromoteFull) {
    return respond(ErrorResponse(NotFound(
        "no rollout command '" + p[4] + "': pause, resume, promote (body {\"full\": true} to the end), abort, retry")));
  }
  if (*command == RolloutCommand::kPromote) {
    const auto full = QueryValue(QueryOf(target), "full");
    bool to_end = full && (*full == "1" || *full == "true");
    auto body = BodyObject(request.body(), "promote");
    if (!body.ok()) return respond(ErrorResponse(body.status()));
    if (auto it = body->FindMember("full"); it != body->MemberEnd()) {
      if (!it->value.IsBool()) return respond(ErrorResponse(InvalidArgument("promote: 'full' must be true or false")));
      to_end = it->value.GetBool();
    }
    if (to_end) command = RolloutCommand::kPromoteFull;
  }
  const Status s = rollouts_.Command(endpoint, *command, info.peer);
  if (!s.ok()) {
    if (s.code() == StatusCode::kNotFound && !deployments_.Find(endpoint)) {
      return respond(ErrorResponse(NotFound("no endpoint '" + endpoint + "'")));
    }
    return respond(ErrorResponse(s));
  }
  respond(RolloutView(endpoint, 10));
}

void AdminApi::Shadow(const HttpRequest& request, const std::vector<std::string>& p,
                      const HttpServer::Responder& respond) {
  if (p.size() != 4) return respond(ErrorResponse(NotFound("no route for " + std::string(request.target()))));
  if (request.method() != http::verb::get) return respond(MethodNotAllowed(request, "GET"));
  const std::string& endpoint = p[2];
  auto router = deployments_.Find(endpoint);
  if (!router) return respond(ErrorResponse(NotFound("no endpoint '" + endpoint + "'")));
  if (!feedback_) {
    return respond(ErrorResponse(
        Unavailable("the shadow comparison reads the prediction log, and this server keeps no store (--data-dir)")));
  }
  const std::string_view target(request.target().data(), request.target().size());
  auto window_s = IntQuery(QueryOf(target), "window_s", 3600, 1, kMaxQualityWindowS, "s");
  if (!window_s.ok()) return respond(ErrorResponse(window_s.status()));
  const int64_t now = WallClock::System()->NowMillis();
  const int64_t from = now - *window_s * 1000;
  const DeploymentSpec& spec = router->spec();
  JsonWriter j;
  j.StartObject();
  j.Field("endpoint", endpoint);
  j.Field("from_ms", from);
  j.Field("to_ms", now);
  j.Key("shadows");
  j.StartArray();
  for (size_t i = 0; i < spec.candidates.size(); ++i) {
    const Variant& v = spec.candidates[i];
    if (v.mode != VariantMode::kShadow) continue;
    constexpr int64_t kMaxPairs = 1'000'000;
    auto c = CompareShadow(feedback_->store(), endpoint, v.name, from, now + 1, kMaxPairs);
    if (!c.ok()) return respond(ErrorResponse(c.status()));
    const VariantStats& stats = router->Stats(static_cast<int>(i));
    j.StartObject();
    j.Field("name", v.name);
    j.Field("model", v.model);
    j.Field("version", v.version);
    j.Field("share", v.share);
    j.Field("copies", stats.requests.load(std::memory_order_relaxed));
    j.Field("errors", stats.errors.load(std::memory_order_relaxed));
    j.Field("pairs", c->pairs);
    j.Field("compared", c->compared);
    j.Field("disagreements", c->disagreements);
    j.Field("disagreement_rate", c->disagreement_rate);
    j.Field("disagreement_upper", c->disagreement_upper);
    j.Field("mean_abs_diff", c->mean_abs_diff);
    j.Field("max_abs_diff", c->max_abs_diff);
    j.Key("latency_ms");
    j.StartObject();
    for (auto [name, p50, p99] : {std::tuple{"production", c->production_p50_ms, c->production_p99_ms.value},
                                  std::tuple{"shadow", c->shadow_p50_ms, c->shadow_p99_ms.value}}) {
      j.Key(name);
      j.StartObject();
      j.Field("p50", p50);
      j.Field("p99", p99);
      j.EndObject();
    }
    j.EndObject();
    j.Field("labeled", c->labeled);
    if (c->labeled > 0) {
      j.Key("accuracy");
      j.StartObject();
      j.Field("production", c->production_accuracy);
      j.Field("shadow", c->shadow_accuracy);
      j.Field("difference", c->accuracy_difference);
      j.IntervalField("ci95", c->accuracy_ci_low, c->accuracy_ci_high);
      j.EndObject();
    }
    j.Field("truncated", c->truncated);
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  respond(MakeResponse(200, j.Take()));
}

void AdminApi::Benchmark(const HttpRequest& request, const RequestInfo& info, const std::vector<std::string>& p,
                         const HttpServer::Responder& respond) {
  const std::string& endpoint = p[2];
  const std::string_view target(request.target().data(), request.target().size());
  if (!deployments_.Find(endpoint)) return respond(ErrorResponse(NotFound("no endpoint '" + endpoint + "'")));
  const bool start = p.size() == 5 && p[4] == "start";
  if (p.size() != 4 && !start) return respond(ErrorResponse(NotFound("no route for " + std::string(target))));
  if (p.size() == 4 && request.method() == http::verb::get) {
    auto limit = IntQuery(QueryOf(target), "limit", 1, 1, RolloutStore::kMaxBenchmarks);
    if (!limit.ok()) return respond(ErrorResponse(limit.status()));
    auto results = benchmarks_.Results(endpoint, static_cast<int>(*limit));
    if (!results.ok()) return respond(ErrorResponse(results.status()));
    const Benchmarker::Queue q = benchmarks_.Pending();
    JsonWriter j;
    j.StartObject();
    j.Field("endpoint", endpoint);
    j.Field("running", q.running == endpoint);
    j.Field("queued", std::find(q.queued.begin(), q.queued.end(), endpoint) != q.queued.end());
    j.Key("benchmarks");
    j.StartArray();
    for (const StoredBenchmark& b : *results) {
      j.StartObject();
      j.Field("id", b.id);
      j.Field("time_ms", b.time_ms);
      j.Key("result");
      j.Raw(b.result);  // written by the benchmarker with JsonWriter
      j.EndObject();
    }
    j.EndArray();
    j.EndObject();
    return respond(MakeResponse(200, j.Take()));
  }
  if (request.method() != http::verb::post) {
    return respond(MethodNotAllowed(request, start ? "POST" : "GET, POST"));
  }
  // The caller was authorised for control by Handle.
  auto body = BodyObject(request.body(), start ? "benchmark start" : "benchmark");
  if (!body.ok()) return respond(ErrorResponse(body.status()));
  if (start) return StartBenchmarkWinner(*body, info, endpoint, respond);
  for (auto it = body->MemberBegin(); it != body->MemberEnd(); ++it) {
    const std::string key = it->name.GetString();
    if (key != "since_s" && key != "metric" && key != "max_rows") {
      return respond(
          ErrorResponse(InvalidArgument("benchmark: unknown field '" + key + "' (since_s, metric, max_rows)")));
    }
  }
  auto integer = [&](const char* key, int64_t fallback, int64_t min, int64_t max) -> StatusOr<int64_t> {
    auto it = body->FindMember(key);
    if (it == body->MemberEnd()) return fallback;
    if (!it->value.IsInt64() || it->value.GetInt64() < min || it->value.GetInt64() > max) {
      return InvalidArgument(fmt::format("benchmark: '{}' must be an integer from {} to {}", key, min, max));
    }
    return it->value.GetInt64();
  };
  auto since_s = integer("since_s", 3600, 1, kMaxQualityWindowS);
  if (!since_s.ok()) return respond(ErrorResponse(since_s.status()));
  auto max_rows = integer("max_rows", 0, 1, kMaxBenchmarkRows);
  if (!max_rows.ok()) return respond(ErrorResponse(max_rows.status()));
  BenchmarkRequest r;
  r.endpoint = endpoint;
  if (auto it = body->FindMember("metric"); it != body->MemberEnd()) {
    if (!it->value.IsString()) return respond(ErrorResponse(InvalidArgument("benchmark: 'metric' must be a string")));
    r.metric = it->value.GetString();
    if (std::string why = CheckBenchmarkMetric(r.metric); !why.empty()) {
      return respond(ErrorResponse(InvalidArgument("benchmark: " + why)));
    }
  }
  const int64_t now = WallClock::System()->NowMillis();
  r.from_ms = now - *since_s * 1000;
  r.to_ms = now + 1;
  r.max_rows = *max_rows;
  r.trigger = "manual by " + info.peer;
  if (Status s = benchmarks_.Enqueue(r); !s.ok()) return respond(ErrorResponse(s));
  JsonWriter j;
  j.StartObject();
  j.Field("endpoint", endpoint);
  j.Field("queued", true);
  j.Field("from_ms", r.from_ms);
  j.Field("to_ms", r.to_ms);
  j.EndObject();
  respond(MakeResponse(202, j.Take()));
}

void AdminApi::StartBenchmarkWinner(const rapidjson::Document& body, const RequestInfo& info,
                                    const std::string& endpoint, const HttpServer::Responder& respond) {
  for (auto it = body.MemberBegin(); it != body.MemberEnd(); ++it) {
    const std::string key = it->name.GetString();
    if (key != "contender" && key != "steps" && key != "min_units") {
      return respond(
          ErrorResponse(InvalidArgument("benchmark start: unknown field '" + key + "' (contender, steps, min_units)")));
    }
  }
  std::string wanted;
  if (auto it = body.FindMember("contender"); it != body.MemberEnd()) {
    if (!it->value.IsString()) {
      return respond(ErrorResponse(InvalidArgument("benchmark start: 'contender' must be a string")));
    }
    wanted = it->value.GetString();
  }
  std::vector<double> steps{5, 25, 50};
  if (auto it = body.FindMember("steps"); it != body.MemberEnd()) {
    if (!it->value.IsArray() || it->value.Empty() || it->value.Size() > 100) {
      return respond(ErrorResponse(InvalidArgument("benchmark start: 'steps' must be a list of 1 to 100 percents")));
    }
    steps.clear();
    for (const auto& v : it->value.GetArray()) {
      if (!v.IsNumber()) return respond(ErrorResponse(InvalidArgument("benchmark start: 'steps' must be numbers")));
      steps.push_back(v.GetDouble());
    }
  }
  std::optional<int64_t> min_units;
  if (auto it = body.FindMember("min_units"); it != body.MemberEnd()) {
    if (!it->value.IsInt64()) {
      return respond(ErrorResponse(InvalidArgument("benchmark start: 'min_units' must be an integer")));
    }
    min_units = it->value.GetInt64();
  }
  auto newest = benchmarks_.Results(endpoint, 1);
  if (!newest.ok()) return respond(ErrorResponse(newest.status()));
  if (newest->empty()) {
    return respond(ErrorResponse(FailedPrecondition("endpoint '" + endpoint + "' has no benchmark yet")));
  }
  rapidjson::Document d;
  if (Status s = ParseJson(newest->front().result, d); !s.ok() || !d.IsObject()) {
    return respond(ErrorResponse(Internal("the stored benchmark does not parse")));
  }
  auto text = [](const rapidjson::Value& v, const char* key) {
    auto it = v.FindMember(key);
    return it != v.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString()) : std::string();
  };
  if (!text(d, "error").empty()) {
    return respond(ErrorResponse(
        FailedPrecondition("the newest benchmark of '" + endpoint + "' was not made: " + text(d, "error"))));
  }
  if (wanted.empty()) wanted = text(d, "winner");
  if (wanted.empty()) {
    return respond(ErrorResponse(FailedPrecondition(
        "the newest benchmark of '" + endpoint +
        "' shows no contender better than production; name one with {\"contender\": NAME} to start it anyway")));
  }
  const rapidjson::Value* chosen = nullptr;
  if (auto it = d.FindMember("contenders"); it != d.MemberEnd() && it->value.IsArray()) {
    for (const auto& c : it->value.GetArray()) {
      if (text(c, "name") == wanted) chosen = &c;
    }
  }
  if (!chosen || text(*chosen, "role") == "production") {
    return respond(ErrorResponse(
        NotFound("the newest benchmark of '" + endpoint + "' has no contender '" + wanted + "' besides production")));
  }
  const std::string role = text(*chosen, "role"), model = text(*chosen, "model");
  auto version_it = chosen->FindMember("version");
  const int64_t version =
      version_it != chosen->MemberEnd() && version_it->value.IsInt64() ? version_it->value.GetInt64() : 0;
  const std::string metric = text(d, "metric");
  const std::string detail = fmt::format("{} ({} v{}) as a canary, steps {}, judged on {}", wanted, model, version,
                                         fmt::join(steps, ","), metric);
  const Status s = deployments_.Mutate(
      endpoint,
      [&](DeploymentSpec& spec) -> Status {
        if (spec.rollout) {
          return FailedPrecondition("endpoint '" + endpoint + "' already has a rollout (of '" +
                                    spec.rollout->candidate + "'); abort it and remove its rollout block first");
        }
        Variant* v = spec.Candidate(wanted);
        if (!v) {
          if (role != "version") {
            return FailedPrecondition("candidate '" + wanted + "' is no longer in the spec");
          }
          Variant added;
          added.name = wanted;
          added.model = model;
          added.version = version;
          spec.candidates.push_back(std::move(added));
          v = &spec.candidates.back();
        }
        v->mode = VariantMode::kCanary;
        v->steps = steps;
        v->step = -1;
        v->share = 0;
        v->mirror = 0;
        RolloutPolicy policy;
        policy.candidate = wanted;
        policy.metric.name = metric;
        const RolloutMetricInfo* info = FindRolloutMetric(metric);
        if (!info) return Internal("the benchmark's metric '" + metric + "' is not a rollout metric");
        policy.metric.higher_is_better = info->higher_is_better;
        if (min_units) policy.min_units = *min_units;
        spec.rollout = policy;
        return Status::Ok();
      },
      {info.peer, "benchmark start", detail});
  if (!s.ok()) return respond(ErrorResponse(s));
  respond(Status_(endpoint));
}

}  // namespace vigil
