// The rollout routes of AdminApi (admin_api.h lists them): the controller's
// state and analyses out, a person's commands in.
#include <fmt/format.h>

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
    if (request.body().find_first_not_of(" \t\r\n") != std::string::npos) {
      rapidjson::Document d;
      if (Status s = ParseJson(request.body(), d); !s.ok()) {
        return respond(ErrorResponse(InvalidArgument("promote: " + s.message())));
      }
      if (!d.IsObject()) return respond(ErrorResponse(InvalidArgument("promote: the body must be a JSON object")));
      if (auto it = d.FindMember("full"); it != d.MemberEnd()) {
        if (!it->value.IsBool())
          return respond(ErrorResponse(InvalidArgument("promote: 'full' must be true or false")));
        to_end = it->value.GetBool();
      }
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
      j.Key("ci95");
      j.StartArray();
      j.Double(c->accuracy_ci_low);
      j.Double(c->accuracy_ci_high);
      j.EndArray();
      j.EndObject();
    }
    j.Field("truncated", c->truncated);
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  respond(MakeResponse(200, j.Take()));
}

}  // namespace vigil
