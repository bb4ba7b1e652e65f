#include "server/admin_api.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "core/clock.h"
#include "core/logging.h"
#include "monitoring/quality.h"
#include "net/http_target.h"
#include "protocol/json.h"
#include "protocol/json_writer.h"
#include "protocol/oip_json.h"
#include "rollout/rollout.h"
#include "server/http_replies.h"

namespace vigil {

namespace http = boost::beast::http;

namespace {

// The body of a POST as a JSON object (empty body = {}).

// A spec as JSON: the same tree as its YAML.
class JsonSpecWriter final : public SpecWriter {
 public:
  explicit JsonSpecWriter(JsonWriter& out) : out_(out) {}
  void BeginMap(bool) override { out_.StartObject(); }
  void EndMap() override { out_.EndObject(); }
  void BeginList(bool) override { out_.StartArray(); }
  void EndList() override { out_.EndArray(); }
  void Key(const std::string& key) override { out_.Key(key); }
  void String(const std::string& value) override { out_.String(value); }
  void Int(int64_t value) override { out_.Int(value); }
  void Double(double value) override { out_.Double(value); }
  void Bool(bool value) override { out_.Bool(value); }

 private:
  JsonWriter& out_;
};

// Whether the client asked for YAML (Accept: application/yaml, text/yaml
// or application/x-yaml); JSON otherwise.
bool WantsYaml(const HttpRequest& request) {
  auto it = request.find(http::field::accept);
  if (it == request.end()) return false;
  const std::string_view accept(it->value().data(), it->value().size());
  return accept.find("application/yaml") != std::string_view::npos ||
         accept.find("text/yaml") != std::string_view::npos ||
         accept.find("application/x-yaml") != std::string_view::npos;
}

int64_t SinceMs(const Router& router) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(router.since().time_since_epoch()).count();
}

// Milliseconds to 4 decimals (the status shows latencies, not noise).
double Ms4(double nanoseconds) { return std::round(nanoseconds / 1e6 * 1e4) / 1e4; }

void WriteVariant(JsonWriter& j, const Router& router, int index) {
  const DeploymentSpec& spec = router.spec();
  const Variant& v = index < 0 ? spec.production : spec.candidates[static_cast<size_t>(index)];
  const double share = index < 0 ? spec.ProductionShare() : v.CurrentShare();
  const VariantStats& st = router.Stats(index);
  const auto lat = st.latency.Take();
  j.StartObject();
  j.Field("name", v.name);
  j.Field("model", v.model);
  j.Key("version");  // null: the latest ready version, as the spec says by leaving it out
  v.version ? j.Int(v.version) : j.Null();
  j.Field("mode", VariantModeName(v.mode));
  j.Field("share", share);
  j.Field("requests", static_cast<uint64_t>(st.requests.load()));
  j.Field("errors", static_cast<uint64_t>(st.errors.load()));
  j.Field("rejected", static_cast<uint64_t>(st.rejected.load()));
  j.Key("latency_ms");
  j.StartObject();
  j.Field("p50", Ms4(lat.Quantile(0.5)));
  j.Field("p90", Ms4(lat.Quantile(0.9)));
  j.Field("p99", Ms4(lat.Quantile(0.99)));
  j.Field("mean", Ms4(lat.Mean()));
  j.EndObject();
  if (index >= 0) {
    j.Field("state", CandidateStateName(StateOf(v)));
    j.Field("position", DescribeCandidate(v));
  }
  if (v.mode == VariantMode::kCanary) {
    j.Field("step", static_cast<int64_t>(v.step));
    j.Key("steps");
    j.StartArray();
    for (double step : v.steps) j.Double(step);
    j.EndArray();
  }
  j.EndObject();
}

}  // namespace

AdminApi::AdminApi(Deployments& deployments, RolloutController& rollouts, Benchmarker& benchmarks,
                   const AccessPolicy& access, FeedbackJoin* feedback)
    : deployments_(deployments), rollouts_(rollouts), benchmarks_(benchmarks), access_(access), feedback_(feedback) {}

void AdminApi::WriteQuality(JsonWriter& j, const Router& router) const {
  const DeploymentSpec& spec = router.spec();
  if (!feedback_) return j.Null();  // no store, no feedback
  auto quality = feedback_->QualityOf(spec.endpoint, SinceMs(router));
  if (!quality.ok()) return j.Null();
  j.StartObject();
  for (const auto& [variant, q] : *quality) {
    j.Key(variant);
    j.StartObject();
    j.Field("joined", static_cast<uint64_t>(q.joined));
    j.Field("labeled", static_cast<uint64_t>(q.labeled));
    j.Field("rewarded", static_cast<uint64_t>(q.rewarded));
    WriteQualityMembers(j, q);
    j.EndObject();
  }
  j.EndObject();
}

StatusOr<FeedbackBody> ParseFeedbackBody(std::string_view body, int64_t now_ms) {
  rapidjson::Document d;
  if (!ParseJson(body, d).ok() || !(d.IsObject() || d.IsArray())) {
    return InvalidArgument(
        "feedback must be JSON: {\"prediction_id\": \"...\", \"label\": N} or {\"reward\": 0..1}, a list of them, or "
        "{\"items\": [...]}");
  }
  std::vector<const rapidjson::Value*> items;
  if (d.IsArray()) {
    for (const auto& v : d.GetArray()) items.push_back(&v);
  } else if (d.HasMember("items") && d["items"].IsArray()) {
    for (const auto& v : d["items"].GetArray()) items.push_back(&v);
  } else {
    items.push_back(&d);
  }
  if (items.size() > AdminApi::kMaxFeedbackItems) {
    return InvalidArgument("a feedback post carries at most " + std::to_string(AdminApi::kMaxFeedbackItems) +
                           " items, this one has " + std::to_string(items.size()) + "; split it");
  }
  FeedbackBody out;
  for (size_t i = 0; i < items.size(); ++i) {
    const rapidjson::Value& v = *items[i];
    std::string problem;
    FeedbackRecord r;
    r.time_ms = now_ms;
    if (!v.IsObject()) {
      problem = "not an object";
    } else if (!v.HasMember("prediction_id") || !v["prediction_id"].IsString() ||
               v["prediction_id"].GetStringLength() == 0 || v["prediction_id"].GetStringLength() > kMaxIdBytes) {
      problem = "'prediction_id' must be a string of 1 to " + std::to_string(kMaxIdBytes) + " bytes";
    } else {
      r.prediction_id.assign(v["prediction_id"].GetString(), v["prediction_id"].GetStringLength());
      if (v.HasMember("label")) {
        if (!v["label"].IsNumber() || !std::isfinite(v["label"].GetDouble())) {
          problem = "'label' must be a finite number (a class index, or the value for a regressor)";
        } else {
          r.label = v["label"].GetDouble();
        }
      }
      if (problem.empty() && v.HasMember("reward")) {
        if (!v["reward"].IsNumber() || !(v["reward"].GetDouble() >= 0 && v["reward"].GetDouble() <= 1)) {
          problem = "'reward' must be a number from 0 to 1";
        } else {
          r.reward = v["reward"].GetDouble();
        }
      }
      if (problem.empty() && !r.label && !r.reward) problem = "give a 'label' or a 'reward'";
    }
    if (!problem.empty()) {
      out.problems.emplace_back(i, std::move(problem));
      continue;
    }
    out.records.push_back(std::move(r));
  }
  return out;
}

void AdminApi::HandleFeedback(const HttpRequest& request, const RequestInfo& info,
                              const HttpServer::Responder& respond) {
  if (request.method() != http::verb::post) return respond(MethodNotAllowed(request, http::verb::post));
  if (Status s = access_.Check(AccessPolicy::Scope::kFeedback, CallerOf(request, info)); !s.ok())
    return respond(ErrorResponse(s));
  if (!feedback_)
    return respond(ErrorResponse(Unavailable("the server runs without a store (--data-dir), so it keeps no feedback")));
  auto parsed = ParseFeedbackBody(request.body(), UnixMillis());
  if (!parsed.ok()) return respond(ErrorResponse(parsed.status()));
  const std::vector<FeedbackRecord>& records = parsed->records;
  auto known = feedback_->Record(records);
  if (!known.ok()) return respond(ErrorResponse(known.status()));
  const std::set<std::string> known_set(known->begin(), known->end());
  JsonWriter j;
  j.StartObject();
  j.Field("accepted", static_cast<uint64_t>(records.size()));
  j.Field("joined", static_cast<uint64_t>(known->size()));
  // The unknown ids are counted; the first kListedUnknownIds are named (a
  // post of 10,000 ids nobody logged would otherwise answer megabytes).
  constexpr size_t kListedUnknownIds = 100;
  size_t unknown = 0;
  j.Key("unknown_ids");
  j.StartArray();
  for (const auto& r : records) {
    if (known_set.count(r.prediction_id)) continue;
    if (unknown++ < kListedUnknownIds) j.String(r.prediction_id);
  }
  j.EndArray();
  j.Field("unknown", static_cast<uint64_t>(unknown));
  j.Key("errors");
  j.StartArray();
  for (const auto& [index, problem] : parsed->problems) {
    j.StartObject();
    j.Field("index", static_cast<uint64_t>(index));
    j.Field("error", problem);
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  respond(MakeResponse(200, j.Take()));
}

HttpResponse AdminApi::Status_(const std::string& endpoint) const {
  auto router = deployments_.Find(endpoint);
  if (!router) return ErrorResponse(NotFound("no endpoint '" + endpoint + "'"));
  const DeploymentSpec& spec = router->spec();
  JsonWriter j;
  j.StartObject();
  j.Field("endpoint", endpoint);
  j.Field("paused", spec.paused);
  j.Field("kill_switch", spec.kill_switch);
  j.Field("since_unix_ms", SinceMs(*router));
  j.Key("variants");
  j.StartArray();
  for (int i = -1; i < static_cast<int>(spec.candidates.size()); ++i) WriteVariant(j, *router, i);
  j.EndArray();
  j.Key("quality");
  WriteQuality(j, *router);
  if (OverloadLadder* ladder = router->ladder()) {
    const SteadyTime now = SystemClock::Get()->Now();
    ladder->Settle(now);
    const OverloadPolicy& o = ladder->policy();
    j.Key("overload");
    j.StartObject();
    j.Field("rung", static_cast<int64_t>(ladder->rung()));
    j.Field("rung_name", std::string(RungName(ladder->rung())));
    j.Field("seconds_at_rung", std::chrono::duration<double>(now - ladder->since()).count());
    j.Field("slo_ms", o.slo_ms);
    if (o.fallback)
      j.Field("fallback", o.fallback->model + (o.fallback->version ? ":" + std::to_string(o.fallback->version) : ""));
    j.Field("recover_after_s", o.recover_after_s);
    j.Key("requests_by_rung");
    j.StartObject();
    for (int r = 0; r < kRungs; ++r) j.Field(std::string(RungName(r)), ladder->requests(r));
    j.EndObject();
    j.EndObject();
  }
  j.EndObject();
  return MakeResponse(200, j.Take());
}

void AdminApi::Handle(const HttpRequest& request, const RequestInfo& info, const std::vector<std::string>& p,
                      const HttpServer::Responder& respond) {
  const http::verb verb = request.method();
  const size_t n = p.size();  // p[0] == "v1", p[1] == "deployments"
  auto not_allowed = [&](std::string_view allowed) { respond(MethodNotAllowed(request, allowed)); };
  if (n == 2) {
    if (verb != http::verb::get) return not_allowed("GET");
    JsonWriter j;
    j.StartArray();
    for (const auto& router : deployments_.All()) {
      j.StartObject();
      j.Field("endpoint", router->spec().endpoint);
      j.Field("state", "active");
      j.Key("spec");
      JsonSpecWriter spec(j);
      WriteDeploymentSpec(router->spec(), spec);
      j.EndObject();
    }
    for (const auto& [name, refused] : deployments_.RefusedDeployments()) {
      j.StartObject();
      j.Field("endpoint", name);
      j.Field("state", "refused");
      j.Field("reason", refused.reason);
      j.Field("spec_text", refused.spec_yaml);  // as stored: it no longer reads as a spec
      j.EndObject();
    }
    j.EndArray();
    return respond(MakeResponse(200, j.Take()));
  }
  const std::string& endpoint = p[2];
  const bool mutation = verb != http::verb::get;
  if (mutation) {
    if (Status s = access_.Check(AccessPolicy::Scope::kControl, CallerOf(request, info)); !s.ok())
      return respond(ErrorResponse(s));
  }
  auto done = [&](const Status& s, const std::string& action) {
    if (!s.ok()) {
      spdlog::info("event=deployment_{}_refused endpoint={} peer={} error={}", action, LogValue(endpoint),
                   LogValue(info.peer), LogValue(s.message()));
      return respond(ErrorResponse(s));
    }
    respond(Status_(endpoint));
  };
  if (n == 3) {
    if (verb == http::verb::get) {
      auto router = deployments_.Find(endpoint);
      if (!router) {
        const auto refused = deployments_.RefusedDeployments();
        if (auto it = refused.find(endpoint); it != refused.end()) {
          return respond(ErrorResponse(FailedPrecondition(
              "endpoint '" + endpoint + "' is refused (its stored spec is not routed): " + it->second.reason +
              "; PUT a valid spec to replace it, or DELETE it")));
        }
        return respond(ErrorResponse(NotFound("no endpoint '" + endpoint + "'")));
      }
      if (WantsYaml(request)) {
        return respond(MakeResponse(200, DeploymentSpecToYaml(router->spec()), "application/yaml"));
      }
      JsonWriter j;
      JsonSpecWriter spec(j);
      WriteDeploymentSpec(router->spec(), spec);
      return respond(MakeResponse(200, j.Take()));
    }
    if (verb == http::verb::put)
      return done(deployments_.Apply(endpoint, request.body(), {info.peer, "apply", ""}), "apply");
    if (verb == http::verb::delete_) {
      const Status s = deployments_.Remove(endpoint, {info.peer, "delete", ""});
      if (!s.ok()) return respond(ErrorResponse(s));
      return respond(MakeResponse(200, "{\"removed\":true}"));
    }
    return not_allowed("GET, PUT, DELETE");
  }
  const std::string& action = p[3];
  if (action == "rollout") return Rollout(request, info, p, respond);
  if (action == "shadow") return Shadow(request, p, respond);
  if (action == "benchmark") return Benchmark(request, info, p, respond);
  if (n == 4 && action == "status") {
    if (verb != http::verb::get) return not_allowed("GET");
    return respond(Status_(endpoint));
  }
  if (n == 4 && action == "history") {
    if (verb != http::verb::get) return not_allowed("GET");
    auto events = deployments_.History(endpoint, 100);
    if (!events.ok()) return respond(ErrorResponse(events.status()));
    JsonWriter j;
    j.StartArray();
    for (const AuditEvent& e : *events) {
      j.StartObject();
      j.Field("id", e.id);
      j.Field("time_ms", e.time_ms);
      j.Field("actor", e.actor);
      j.Field("action", e.action);
      j.Field("detail", e.detail);
      j.Field("before", e.before);
      j.Field("after", e.after);
      j.EndObject();
    }
    j.EndArray();
    return respond(MakeResponse(200, j.Take()));
  }
  if (verb != http::verb::post) return not_allowed("POST");
  auto body = BodyObject(request.body(), action);
  if (!body.ok()) return respond(ErrorResponse(body.status()));
  const rapidjson::Document& d = *body;
  auto apply = [&](RolloutAction rollout, const std::string& detail) {
    const std::string name(RolloutActionName(rollout.kind));
    done(deployments_.Mutate(endpoint, [&](DeploymentSpec& spec) { return ApplyRolloutAction(spec, rollout); },
                             {info.peer, name, detail}),
         name);
  };
  if (n == 4 && (action == "pause" || action == "resume")) {
    return apply({.kind = action == "pause" ? RolloutAction::Kind::kPause : RolloutAction::Kind::kResume}, "");
  }
  if (n == 4 && (action == "promote" || action == "rollback")) {
    RolloutAction rollout{.kind = action == "promote" ? RolloutAction::Kind::kPromote : RolloutAction::Kind::kRollback};
    if (d.HasMember("candidate")) {
      if (!d["candidate"].IsString())
        return respond(ErrorResponse(InvalidArgument(action + ": 'candidate' must be a string")));
      rollout.candidate = d["candidate"].GetString();
    }
    return apply(std::move(rollout), request.body());
  }
  if (n == 6 && action == "candidates" && p[5] == "weight") {
    RolloutAction rollout{.kind = RolloutAction::Kind::kSetWeight, .candidate = p[4]};
    if (d.HasMember("step")) {
      if (!d["step"].IsInt()) return respond(ErrorResponse(InvalidArgument("weight: 'step' must be an integer")));
      rollout.step = d["step"].GetInt();
    }
    if (d.HasMember("share")) {
      if (!d["share"].IsNumber()) return respond(ErrorResponse(InvalidArgument("weight: 'share' must be a number")));
      rollout.share = d["share"].GetDouble();
    }
    return apply(std::move(rollout), p[4] + " " + request.body());
  }
  respond(ErrorResponse(
      NotFound("no route for " + std::string(request.method_string()) + " " + std::string(request.target()))));
}

}  // namespace vigil
