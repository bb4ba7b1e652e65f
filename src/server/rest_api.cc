#include "server/rest_api.h"

#include <rapidjson/document.h>

#include <boost/beast/http.hpp>
#include <charconv>

#include "core/logging.h"
#include "net/control_workers.h"
#include "net/http_target.h"
#include "protocol/json.h"
#include "protocol/json_writer.h"
#include "protocol/oip_json.h"
#include "server/http_replies.h"
#include "server/monitoring_api.h"

namespace vigil {

namespace http = boost::beast::http;

namespace {

constexpr boost::beast::string_view kHeaderLength = "Inference-Header-Content-Length";

std::string_view ToStd(boost::beast::string_view s) { return {s.data(), s.size()}; }

HttpResponse Json(std::string body) { return MakeResponse(200, std::move(body)); }

// Whether `request` uses `want`; if not, answers 405 naming the method to use.
template <class Respond>
bool MethodIs(const HttpRequest& request, http::verb want, const Respond& respond) {
  if (request.method() == want) return true;
  respond(MethodNotAllowed(request, want));
  return false;
}

void WriteShape(JsonWriter& j, const Shape& shape) {
  j.StartArray();
  for (int64_t d : shape) j.Int(d);
  j.EndArray();
}

// [{"name", "datatype", "shape"}...]; with `batch_dim`, -1 leads each shape.
void WriteTensorSpecs(JsonWriter& j, const std::vector<TensorSpec>& specs, bool batch_dim) {
  j.StartArray();
  for (const TensorSpec& t : specs) {
    j.StartObject();
    j.Field("name", t.name);
    j.Field("datatype", DataTypeName(t.datatype));
    Shape shape = t.dims;
    if (batch_dim) shape.insert(shape.begin(), -1);
    j.Key("shape");
    WriteShape(j, shape);
    j.EndObject();
  }
  j.EndArray();
}

void WriteDuration(JsonWriter& j, const char* name, uint64_t count, uint64_t ns) {
  j.Key(name);
  j.StartObject();
  j.Field("count", count);
  j.Field("ns", ns);
  j.EndObject();
}

}  // namespace

StatusOr<std::unique_ptr<RestApi>> RestApi::Create(Options o) {
  if (!o.service || !o.repository || !o.metrics || !o.state || !o.access || !o.admin || !o.monitoring || !o.control) {
    return InvalidArgument(
        "RestApi needs its service, repository, metrics, state, access policy, admin and "
        "monitoring handlers and control workers");
  }
  return std::unique_ptr<RestApi>(new RestApi(o));
}

RestApi::RestApi(const Options& o)
    : service_(*o.service),
      repository_(*o.repository),
      metrics_(*o.metrics),
      state_(*o.state),
      access_(*o.access),
      admin_(*o.admin),
      monitoring_(*o.monitoring),
      control_(*o.control),
      code_counters_(600, nullptr) {
  for (unsigned code : {200u, 400u, 401u, 403u, 404u, 405u, 409u, 413u, 429u, 500u, 501u, 503u, 504u}) {
    code_counters_[code] = &metrics_.http_requests().WithLabels({std::to_string(code)});
  }
}

Counter& RestApi::HttpCounter(unsigned code) {
  if (code < code_counters_.size() && code_counters_[code]) return *code_counters_[code];
  return metrics_.http_requests().WithLabels({std::to_string(code)});
}

void RestApi::Handle(HttpRequest&& request, const RequestInfo& info, HttpServer::Responder respond_raw) {
  auto respond = [this, respond_raw = std::move(respond_raw)](HttpResponse&& res) {
    HttpCounter(res.result_int()).Inc();
    respond_raw(std::move(res));
  };
  std::vector<std::string> p = SplitPath(ToStd(request.target()));
  const bool control_route = (p.size() >= 1 && p[0] == "v1") || (p.size() >= 2 && p[0] == "v2" && p[1] == "repository");
  if (control_route) {
    auto shared = std::make_shared<HttpRequest>(std::move(request));
    const bool queued =
        control_.Post([this, shared, info, p = std::move(p), respond] { HandleControl(*shared, info, p, respond); });
    if (!queued) {
      respond(ErrorResponse(Overloaded("the server's control threads are busy (their queue is full); retry later")));
    }
    return;
  }
  auto method_is = [&](http::verb want) { return MethodIs(request, want, respond); };
  const size_t n = p.size();

  if (n == 1 && p[0] == "metrics") {
    if (method_is(http::verb::get))
      respond(MakeResponse(200, metrics_.registry().Expose(), "text/plain; version=0.0.4; charset=utf-8"));
    return;
  }
  if (n >= 1 && p[0] == "v2") {
    if (n == 1) {
      if (method_is(http::verb::get)) respond(ServerMetadata());
      return;
    }
    if (n == 3 && p[1] == "health") {
      if (!method_is(http::verb::get)) return;
      if (p[2] == "live") return respond(MakeResponse(200, "{\"live\":true}"));
      if (p[2] == "ready") return respond(ServerReady());
    }
    if (p[1] == "models") {
      // /v2/models/stats
      if (n == 3 && p[2] == "stats") {
        if (method_is(http::verb::get)) respond(ModelStats("", ""));
        return;
      }
      if (n >= 3) {
        const std::string& model = p[2];
        size_t rest = 3;
        std::string version;
        if (n >= 5 && p[3] == "versions") {
          version = p[4];
          rest = 5;
        }
        if (n == rest) {
          if (method_is(http::verb::get)) respond(ModelMetadata(model, version));
          return;
        }
        if (n == rest + 1) {
          const std::string& action = p[rest];
          if (action == "infer") {
            if (method_is(http::verb::post)) Infer(std::move(request), model, version, std::move(respond));
            return;
          }
          if (action == "ready") {
            if (method_is(http::verb::get)) respond(ModelReady(model, version));
            return;
          }
          if (action == "config") {
            if (method_is(http::verb::get)) respond(ModelConfigJson(model, version));
            return;
          }
          if (action == "stats") {
            if (method_is(http::verb::get)) respond(ModelStats(model, version));
            return;
          }
        }
      }
    }
  }
  respond(MakeResponse(
      404, ErrorJson("no route for " + std::string(request.method_string()) + " " + std::string(request.target()))));
}

void RestApi::HandleControl(const HttpRequest& request, const RequestInfo& info, const std::vector<std::string>& p,
                            const HttpServer::Responder& respond) {
  const size_t n = p.size();
  if (n >= 2 && p[1] == "deployments") return admin_.Handle(request, info, p, respond);
  if (n == 2 && p[1] == "feedback") return admin_.HandleFeedback(request, info, respond);
  if (n >= 2 && (p[1] == "monitoring" || p[1] == "alerts")) return monitoring_.Handle(request, p, respond);
  auto method_is = [&](http::verb want) { return MethodIs(request, want, respond); };
  if (p[0] == "v2" && n == 3 && p[2] == "index") {
    if (method_is(http::verb::post)) respond(RepositoryIndex(request));
    return;
  }
  if (p[0] == "v2" && n == 5 && p[2] == "models" && (p[4] == "load" || p[4] == "unload")) {
    if (!method_is(http::verb::post)) return;
    // Loading runs code from the repository and changes what is served:
    // a control route, authorised as the admin API is.
    if (Status s = access_.Check(AccessPolicy::Scope::kControl, CallerOf(request, info)); !s.ok()) {
      spdlog::info("event=repository_{}_refused model={} peer={} error={}", p[4], LogValue(p[3]), LogValue(info.peer),
                   LogValue(s.message()));
      return respond(ErrorResponse(s));
    }
    Status s;
    if (p[4] == "load") {
      auto config = LoadConfigParameter(request.body());
      s = config.ok() ? repository_.LoadModel(p[3], std::move(config).value()) : config.status();
    } else {
      s = repository_.UnloadModel(p[3]);
    }
    spdlog::info("event=repository_{} model={} peer={} result={}", p[4], LogValue(p[3]), LogValue(info.peer),
                 LogValue(s.ok() ? "ok" : s.message()));
    return respond(s.ok() ? Json("{}") : ErrorResponse(s));
  }
  respond(MakeResponse(
      404, ErrorJson("no route for " + std::string(request.method_string()) + " " + std::string(request.target()))));
}

void RestApi::Infer(HttpRequest&& request, const std::string& model, const std::string& version,
                    HttpServer::Responder respond) {
  // A request that cannot be read is answered for its target first: an
  // unknown name is 404 whatever the body holds. Only refusals pay for the
  // lookup; a good request is resolved once, inside Infer.
  auto refuse = [&](Status s) {
    if (auto target = service_.Find(model, version); !target.ok()) s = target.status();
    respond(ErrorResponse(s));
  };
  std::optional<size_t> header_length;
  if (auto it = request.find(kHeaderLength); it != request.end()) {
    const std::string_view v = ToStd(it->value());
    size_t parsed = 0;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
    if (ec != std::errc() || ptr != v.data() + v.size()) {
      return refuse(InvalidArgument(std::string(kHeaderLength) + " must be a non-negative integer, got '" +
                                    std::string(v) + "'"));
    }
    header_length = parsed;
  }
  auto parsed_version = ParseVersionString(version);
  if (!parsed_version.ok()) return refuse(parsed_version.status());
  InferCall call;
  if (header_length && *header_length == 0) {
    // The whole body is the raw bytes of the single input of the model (or
    // the endpoint's production model), batch 1.
    auto target = service_.Find(model, version);
    if (!target.ok()) return respond(ErrorResponse(target.status()));
    const ModelConfig& c = *target->config;
    if (c.inputs.size() != 1) {
      return respond(ErrorResponse(InvalidArgument(std::string(kHeaderLength) + ": 0 needs a model with one input; '" +
                                                   model + "' has " + std::to_string(c.inputs.size()))));
    }
    Tensor t;
    const Status s = RawBodyInput(request.body(), c.inputs[0], c.max_batch_size > 0, &t);
    if (!s.ok()) return respond(ErrorResponse(s));
    call.inputs.push_back(std::move(t));
    call.binary_output = true;
  } else {
    auto decoded = DecodeInferRequest(request.body(), header_length);
    if (!decoded.ok()) return refuse(decoded.status());
    call = std::move(decoded).value();
  }
  call.model = model;
  call.version = *parsed_version;
  // Read by endpoint routing inside Infer, while `request` is still alive.
  call.header = [&request](std::string_view name) -> std::optional<std::string> {
    auto it = request.find(boost::beast::string_view(name.data(), name.size()));
    if (it == request.end()) return std::nullopt;
    return std::string(it->value());
  };
  service_.Infer(std::move(call), [respond = std::move(respond)](const Status& s, InferReply&& reply) {
    if (!s.ok()) {
      // A shed by an endpoint's ladder says when to come back and which rung refused it.
      HttpResponse res = ErrorResponse(s);
      if (auto it = reply.parameters.find("vigil.retry_after_s");
          it != reply.parameters.end() && std::holds_alternative<int64_t>(it->second))
        res.set(http::field::retry_after, std::to_string(std::get<int64_t>(it->second)));
      if (auto it = reply.parameters.find("vigil.rung");
          it != reply.parameters.end() && std::holds_alternative<int64_t>(it->second))
        res.set("Vigil-Rung", std::to_string(std::get<int64_t>(it->second)));
      return respond(std::move(res));
    }
    EncodedBody enc = EncodeInferReply(reply);
    if (enc.header_length) {
      HttpResponse res = MakeResponse(200, std::move(enc.body), "application/octet-stream");
      res.set(kHeaderLength, std::to_string(*enc.header_length));
      return respond(std::move(res));
    }
    respond(MakeResponse(200, std::move(enc.body)));
  });
}

HttpResponse RestApi::ServerMetadata() const {
  std::string out = "{\"name\":\"vigil\",\"version\":\"" VIGIL_VERSION
                    "\",\"extensions\":["
                    "\"binary_tensor_data\",\"model_repository\",\"statistics\",\"model_configuration\"]}";
  return Json(std::move(out));
}

HttpResponse RestApi::ServerReady() const {
  const Status s = state_.CheckReady(repository_);
  if (!s.ok()) return MakeResponse(400, ErrorJson(s.message()));
  // KServe's {"ready": true}, with which replica leads (the rollout
  // controller, alert notifications and retention run there).
  JsonWriter j;
  j.StartObject();
  j.Field("ready", true);
  if (const Leadership* l = state_.leadership) {
    j.Field("leader", l->IsLeader());
    j.Field("leader_epoch", l->Epoch());
  }
  if (!state_.replica.empty()) j.Field("replica", state_.replica);
  j.EndObject();
  return MakeResponse(200, j.Take());
}

HttpResponse RestApi::ModelMetadata(const std::string& name, const std::string& version_text) const {
  auto info = service_.Find(name, version_text);
  if (!info.ok()) return ErrorResponse(info.status());
  const ModelConfig& c = *info->config;
  JsonWriter j;
  j.StartObject();
  j.Field("name", name);
  j.Key("versions");
  j.StartArray();
  for (int64_t rv : info->ready_versions) j.String(std::to_string(rv));
  j.EndArray();
  j.Field("platform", BackendPlatform(c.backend));
  j.Key("inputs");
  WriteTensorSpecs(j, c.inputs, c.max_batch_size > 0);
  j.Key("outputs");
  WriteTensorSpecs(j, c.outputs, c.max_batch_size > 0);
  j.EndObject();
  return Json(j.Take());
}

HttpResponse RestApi::ModelReady(const std::string& name, const std::string& version_text) const {
  auto target = service_.Resolve(name, version_text);
  if (!target.ok()) return ErrorResponse(target.status());
  auto pinned = repository_.Acquire(target->model, target->version);
  if (!pinned.ok()) {
    // Known but not ready answers "false" with 400; unknown models stay 404.
    const Status& st = pinned.status();
    return MakeResponse(st.code() == StatusCode::kUnavailable ? 400 : HttpStatusFor(st.code()),
                        ErrorJson(st.message()));
  }
  return MakeResponse(200, "{\"ready\":true}");
}

HttpResponse RestApi::ModelConfigJson(const std::string& model, const std::string& version) const {
  auto v = ParseVersionString(version);
  if (!v.ok()) return ErrorResponse(v.status());
  auto pinned = repository_.Acquire(model, *v);
  if (!pinned.ok()) return ErrorResponse(pinned.status());
  const ModelConfig& c = (*pinned)->config();
  JsonWriter j;
  j.StartObject();
  j.Field("name", c.name);
  j.Field("backend", BackendKindName(c.backend));
  j.Field("platform", BackendPlatform(c.backend));
  j.Field("max_batch_size", c.max_batch_size);
  j.Key("inputs");
  WriteTensorSpecs(j, c.inputs, false);
  j.Key("outputs");
  WriteTensorSpecs(j, c.outputs, false);
  const auto& d = c.dynamic_batching;
  j.Key("dynamic_batching");
  j.StartObject();
  j.Field("max_queue_delay_us", d.max_queue_delay_us);
  j.Key("preferred_batch_sizes");
  WriteShape(j, d.preferred_batch_sizes);
  j.Field("max_queue_size", d.max_queue_size);
  j.Field("default_timeout_us", d.default_timeout_us);
  j.EndObject();
  j.Field("instances", c.instances);
  j.Key("version_policy");
  switch (c.version_policy.kind) {
    case VersionPolicy::Kind::kAll:
      j.String("all");
      break;
    case VersionPolicy::Kind::kLatest:
      j.StartObject();
      j.Field("latest", c.version_policy.latest);
      j.EndObject();
      break;
    case VersionPolicy::Kind::kSpecific:
      j.StartObject();
      j.Key("specific");
      WriteShape(j, c.version_policy.specific);
      j.EndObject();
      break;
  }
  j.Key("warmup");
  if (c.warmup.enabled) {
    j.StartObject();
    j.Field("batch_size", c.warmup.batch_size);
    j.Field("iterations", c.warmup.iterations);
    j.EndObject();
  } else {
    j.Bool(false);
  }
  j.Field("batching", c.max_batch_size > 0);
  j.EndObject();
  return Json(j.Take());
}

HttpResponse RestApi::ModelStats(const std::string& model, const std::string& version) const {
  auto v = ParseVersionString(version);
  if (!v.ok()) return ErrorResponse(v.status());
  auto pinned = repository_.AcquireAll(model, *v);
  if (!pinned.ok()) return ErrorResponse(pinned.status());
  JsonWriter j;
  j.StartObject();
  j.Key("model_stats");
  j.StartArray();
  for (const auto& mv : *pinned) {
    const SchedulerStats s = mv->Stats();
    j.StartObject();
    j.Field("name", mv->config().name);
    j.Field("version", std::to_string(mv->version()));
    j.Field("last_inference", static_cast<int64_t>(s.last_inference_ms));
    j.Field("inference_count", static_cast<uint64_t>(s.inference_count));
    j.Field("execution_count", static_cast<uint64_t>(s.execution_count));
    j.Field("queue_depth", static_cast<uint64_t>(mv->QueueDepth()));
    j.Key("inference_stats");
    j.StartObject();
    WriteDuration(j, "success", s.success_count, s.success_ns);
    WriteDuration(j, "fail", s.fail_count, s.fail_ns);
    WriteDuration(j, "queue", s.queue_count, s.queue_ns);
    WriteDuration(j, "compute_infer", s.compute_count, s.compute_ns);
    j.EndObject();
    j.Key("batch_stats");
    j.StartArray();
    for (const auto& [size, b] : s.batch_stats) {
      j.StartObject();
      j.Field("batch_size", static_cast<int64_t>(size));
      WriteDuration(j, "compute_infer", b.count, b.compute_ns);
      j.EndObject();
    }
    j.EndArray();
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  return Json(j.Take());
}

// The optional body of a load request: {"parameters": {"config": "<YAML or JSON>"}}.
StatusOr<std::optional<std::string>> RestApi::LoadConfigParameter(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return std::optional<std::string>();
  rapidjson::Document doc;
  const char* kShape = "load body must be {\"parameters\": {\"config\": \"<config.yaml text, YAML or JSON>\"}}";
  if (Status s = ParseJson(body, doc); !s.ok()) return InvalidArgument(s.message() + "; " + kShape);
  if (!doc.IsObject()) return InvalidArgument(kShape);
  std::optional<std::string> config;
  for (const auto& m : doc.GetObject()) {
    if (std::string_view(m.name.GetString()) != "parameters" || !m.value.IsObject()) return InvalidArgument(kShape);
    for (const auto& p : m.value.GetObject()) {
      const std::string_view key = p.name.GetString();
      if (key != "config") return InvalidArgument("unknown load parameter '" + std::string(key) + "'; " + kShape);
      if (!p.value.IsString()) return InvalidArgument(kShape);
      config.emplace(p.value.GetString(), p.value.GetStringLength());
    }
  }
  return config;
}

HttpResponse RestApi::RepositoryIndex(const HttpRequest& request) const {
  bool ready_only = false;
  const std::string& b = request.body();
  if (b.find_first_not_of(" \t\r\n") != std::string::npos) {
    rapidjson::Document doc;
    if (!ParseJson(b, doc).ok() || !doc.IsObject())
      return ErrorResponse(InvalidArgument("index body must be {\"ready\": true|false}"));
    for (const auto& m : doc.GetObject()) {
      if (std::string_view(m.name.GetString()) != "ready" || !m.value.IsBool()) {
        return ErrorResponse(InvalidArgument("index body must be {\"ready\": true|false}, got key '" +
                                             std::string(m.name.GetString()) + "'"));
      }
      ready_only = m.value.GetBool();
    }
  }
  JsonWriter j;
  j.StartArray();
  for (const auto& row : repository_.Index()) {
    if (ready_only && row.state != VersionState::kReady) continue;
    j.StartObject();
    j.Field("name", row.model);
    if (!row.version.empty()) j.Field("version", row.version);
    j.Field("state", VersionStateName(row.state));
    j.Field("reason", row.reason);
    j.EndObject();
  }
  j.EndArray();
  return Json(j.Take());
}

}  // namespace vigil
