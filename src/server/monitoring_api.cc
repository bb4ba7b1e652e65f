#include "server/monitoring_api.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include "core/clock.h"
#include "monitoring/quality.h"
#include "net/http_target.h"
#include "protocol/json_writer.h"
#include "protocol/oip_json.h"
#include "server/alert_webhook.h"
#include "server/http_replies.h"

namespace vigil {
namespace {

// Unix milliseconds a query may name: from 1970 to the year 2286.
constexpr int64_t kMaxQueryTimeMs = 9'999'999'999'999;
constexpr std::string_view kUnixMs = "Unix milliseconds";

}  // namespace

void MonitoringApi::Handle(const HttpRequest& request, const std::vector<std::string>& path,
                           const HttpServer::Responder& respond) const {
  namespace http = boost::beast::http;
  const std::string_view query = QueryOf(std::string_view(request.target().data(), request.target().size()));
  if (path[1] == "alerts") {
    if (path.size() != 2) return respond(ErrorResponse(NotFound("no alerts resource; use GET /v1/alerts")));
    if (request.method() != http::verb::get) return respond(MethodNotAllowed(request, http::verb::get));
    auto limit = IntQuery(query, "limit", 100, 1, 1000);
    if (!limit.ok()) return respond(ErrorResponse(limit.status()));
    return respond(MakeResponse(200, AlertsJson(o_.alerts->Get(static_cast<int>(*limit)))));
  }
  // /v1/monitoring/{name}/drift or /quality
  if (path.size() != 4 || (path[3] != "drift" && path[3] != "quality")) {
    return respond(ErrorResponse(NotFound("no monitoring resource " + std::string(request.target()) +
                                          "; try /v1/monitoring/{model or endpoint}/drift or "
                                          "/v1/monitoring/{endpoint}/quality")));
  }
  if (request.method() != http::verb::get) return respond(MethodNotAllowed(request, http::verb::get));
  respond(path[3] == "drift" ? Drift(path[2], query) : Quality(path[2], query));
}

HttpResponse MonitoringApi::Quality(const std::string& endpoint, std::string_view query) const {
  if (!o_.deployments->Find(endpoint)) {
    return ErrorResponse(NotFound("no endpoint '" + endpoint + "' (quality needs an endpoint's prediction log)"));
  }
  if (!o_.feedback) {
    return ErrorResponse(Unavailable("the server runs without a store (--data-dir), so it keeps no feedback"));
  }
  const int64_t now = UnixMillis();
  auto window_s = IntQuery(query, "window_s", 3600, 1, kMaxQualityWindowS);
  auto from = IntQuery(query, "from", now - 7 * 24 * 3600 * 1000LL, 0, kMaxQueryTimeMs, kUnixMs);
  auto to = IntQuery(query, "to", now, 0, kMaxQueryTimeMs, kUnixMs);
  for (const auto* s : {&window_s, &from, &to}) {
    if (!s->ok()) return ErrorResponse(s->status());
  }
  auto q = o_.feedback->Windows(endpoint, *from, *to, *window_s * 1000, now, /*scan_predictions=*/true);
  if (!q.ok()) return ErrorResponse(q.status());
  JsonWriter j;
  j.StartObject();
  j.Field("endpoint", endpoint);
  j.Field("window_s", *window_s);
  j.Key("label_delay_p90_s");
  j.Double(q->label_delay_p90_s.value_or(std::nan("")));
  j.Field("predictions_scanned", q->predictions_scanned);
  j.Field("scan_truncated", q->scan_truncated);
  j.Key("windows");
  j.StartArray();
  for (const auto& w : q->windows) {
    j.StartObject();
    j.Field("start_ms", w.start_ms);
    j.Field("end_ms", w.end_ms);
    j.Field("incomplete", w.incomplete);
    j.Key("variants");
    j.StartObject();
    for (const auto& [variant, cell] : w.variants) {
      j.Key(variant);
      j.StartObject();
      j.Field("predictions", cell.predictions);
      j.Field("joined", static_cast<uint64_t>(cell.quality.joined));
      j.Field("labeled", static_cast<uint64_t>(cell.quality.labeled));
      j.Field("rewarded", static_cast<uint64_t>(cell.quality.rewarded));
      WriteQualityMembers(j, cell.quality);
      if (cell.estimated > 0) {
        j.Field("estimated_accuracy", cell.expected_correct / static_cast<double>(cell.estimated));
        j.Field("estimated_rows", cell.estimated);
      }
      j.EndObject();
    }
    j.EndObject();
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  return MakeResponse(200, j.Take());
}

HttpResponse MonitoringApi::Drift(const std::string& name, std::string_view query) const {
  auto from = IntQuery(query, "from", 0, 0, kMaxQueryTimeMs, kUnixMs);
  auto to = IntQuery(query, "to", kMaxQueryTimeMs, 0, kMaxQueryTimeMs, kUnixMs);
  auto limit = IntQuery(query, "limit", 100, 1, 10000);
  for (const auto* s : {&from, &to, &limit}) {
    if (!s->ok()) return ErrorResponse(s->status());
  }

  // An endpoint covers its production model and candidates; otherwise the name is a model.
  std::vector<std::string> models;
  if (auto router = o_.deployments->Find(name)) {
    std::set<std::string> seen;
    if (seen.insert(router->spec().production.model).second) models.push_back(router->spec().production.model);
    for (const auto& c : router->spec().candidates) {
      if (seen.insert(c.model).second) models.push_back(c.model);
    }
  } else {
    if (!o_.repository->Find(name).ok()) return ErrorResponse(NotFound("no model or endpoint '" + name + "'"));
    models.push_back(name);
  }

  JsonWriter j;
  j.StartObject();
  j.Field("name", name);
  j.Key("versions");
  j.StartArray();
  for (const auto& model : models) {
    auto versions = o_.repository->AcquireAll(model, 0);
    if (!versions.ok()) continue;
    for (const auto& mv : *versions) {
      j.StartObject();
      j.Field("model", model);
      j.Field("version", mv->version());
      j.Field("monitored", mv->monitor() != nullptr);
      if (DriftMonitor* m = mv->monitor()) {
        j.Key("reference");
        if (const auto ref = m->reference()) {
          j.StartObject();
          j.Field("source", ref->source);
          j.Field("rows", ref->rows);
          j.Field("columns", static_cast<uint64_t>(ref->columns.size()));
          j.Field("labeled", static_cast<uint64_t>(ref->quality.labeled));
          j.Key("quality");
          j.StartObject();
          WriteQualityMembers(j, ref->quality);
          j.EndObject();
          j.EndObject();
        } else {
          j.Null();
          j.Field("collecting_reference_rows", m->config().reference_rows);
        }
        j.Field("window_rows", m->config().window_rows);
        j.Field("window_seconds", m->config().window_seconds);
        j.Field("min_window_rows", m->config().min_window_rows);
        j.Field("nonfinite_inputs", m->nonfinite_inputs());
        j.Field("nonfinite_outputs", m->nonfinite_outputs());
      }
      if (const auto health = o_.loop->LastHealth(model, mv->version())) {
        j.Key("health");
        j.StartObject();
        j.Field("requests", static_cast<uint64_t>(health->requests));
        j.Field("errors", static_cast<uint64_t>(health->errors));
        j.Field("error_rate", health->error_rate);
        j.Field("latency_p99_ms", health->latency_p99_ms.value_or(std::nan("")));
        j.Field("peak_queue", static_cast<int64_t>(health->peak_queue));
        j.Field("queue_saturation", health->queue_saturation);
        j.EndObject();
      }
      j.EndObject();
    }
  }
  j.EndArray();
  j.Key("windows");
  j.StartArray();
  for (const auto& model : models) {
    auto windows = o_.drift_store->DriftWindows(model, *from, *to, static_cast<int>(*limit));
    if (!windows.ok()) return ErrorResponse(windows.status());
    for (const auto& w : *windows) {
      j.StartObject();
      j.Field("model", w.model);
      j.Field("version", w.version);
      j.Field("start_ms", w.start_ms);
      j.Field("end_ms", w.end_ms);
      j.Field("rows", w.rows);
      j.Field("reference_rows", w.reference_rows);
      j.Field("reference_source", w.reference_source);
      j.Field("drifted_share", w.drifted_share);
      j.Field("dataset_drift", w.dataset_drift);
      j.Key("columns");
      j.Raw(w.columns);
      j.EndObject();
    }
  }
  j.EndArray();
  j.EndObject();
  return MakeResponse(200, j.Take());
}

}  // namespace vigil
