// AdminApi: /v1/deployments, the deployment admin routes.
//
//   GET    /v1/deployments                                  endpoints and their specs (JSON objects)
//   GET    /v1/deployments/{e}                              the spec: JSON, or YAML with Accept: application/yaml;
//                                                           either can be PUT back as it is
//   PUT    /v1/deployments/{e}                              apply a spec (YAML or JSON body)
//   DELETE /v1/deployments/{e}
//   POST   /v1/deployments/{e}/candidates/{c}/weight        {"share": 20} (ab) or {"step": 2} (canary)
//   POST   /v1/deployments/{e}/promote                      {"candidate": "c"} (optional when only one)
//   POST   /v1/deployments/{e}/rollback                     {"candidate": "c"} (optional: all)
//   POST   /v1/deployments/{e}/pause, /resume
//   GET    /v1/deployments/{e}/status                       per-variant traffic since the last change
//   GET    /v1/deployments/{e}/history                      the last 100 changes, newest first
//   GET    /v1/deployments/{e}/rollout[?analyses=10]        the rollout: phase, step, why, the last analyses
//   GET    /v1/deployments/{e}/shadow[?window_s=3600]       each shadow against production on the same requests
//   POST   /v1/deployments/{e}/rollout/{command}            pause, resume, promote ({"full": true} or ?full=1
//                                                           to production), abort, retry
//   GET    /v1/deployments/{e}/benchmark[?limit=1]          the newest benchmarks of the competing models, and
//                                                           whether one is queued or running
//   POST   /v1/deployments/{e}/benchmark                    {"since_s": 3600, "metric": "accuracy", "max_rows":
//                                                           5000}: queue one (202)
//   POST   /v1/deployments/{e}/benchmark/start              {"contender": "v3", "steps": [5, 25, 50],
//                                                           "min_units": 1000}: the newest benchmark's winner
//                                                           (or the contender named) as a canary with a rollout
//
// Changes (PUT, DELETE, POST) need `Authorization: Bearer <token>` when an
// admin token is set; without one they are accepted only from loopback.
#pragma once

#include <rapidjson/document.h>

#include <memory>
#include <string>

#include "monitoring/feedback_join.h"
#include "monitoring/quality.h"
#include "monitoring/serving_metrics.h"
#include "net/access.h"
#include "net/http_server.h"
#include "protocol/json_writer.h"
#include "rollout/benchmark.h"
#include "rollout/controller.h"
#include "routing/deployments.h"

namespace vigil {

// A feedback post: its well-formed items as records (stamped `now_ms`), and
// for each malformed one its index and what is wrong with it. An error when
// the body is not feedback at all. Pure.
struct FeedbackBody {
  std::vector<FeedbackRecord> records;
  std::vector<std::pair<size_t, std::string>> problems;
};
StatusOr<FeedbackBody> ParseFeedbackBody(std::string_view body, int64_t now_ms);

// Handlers may block on the store: the server runs them on its control
// threads, never on an HTTP I/O thread.
class AdminApi {
 public:
  // The most feedback items one post may carry.
  static constexpr size_t kMaxFeedbackItems = 10'000;

  // `feedback` is null when the server keeps no store (--data-dir): the
  // feedback route answers 503 then, and status shows no quality.
  AdminApi(Deployments& deployments, RolloutController& rollouts, Benchmarker& benchmarks, const AccessPolicy& access,
           FeedbackJoin* feedback);

  // Handles /v1/deployments...; `path` is the target split on '/'.
  void Handle(const HttpRequest& request, const RequestInfo& info, const std::vector<std::string>& path,
              const HttpServer::Responder& respond);
  // POST /v1/feedback: {"prediction_id": "...", "label": 1 | "reward": 0.5}, an array of
  // them, or {"items": [...]}. Durable when answered; says how many joined a
  // logged prediction, lists unknown ids and reports malformed items by index.
  void HandleFeedback(const HttpRequest& request, const RequestInfo& info, const HttpServer::Responder& respond);

 private:
  HttpResponse Status_(const std::string& endpoint) const;
  // /v1/deployments/{e}/rollout[/command] (server/rollout_api.cc).
  void Rollout(const HttpRequest& request, const RequestInfo& info, const std::vector<std::string>& path,
               const HttpServer::Responder& respond);
  HttpResponse RolloutView(const std::string& endpoint, int analyses) const;
  void Shadow(const HttpRequest& request, const std::vector<std::string>& path, const HttpServer::Responder& respond);
  // /v1/deployments/{e}/benchmark[/start] (server/rollout_api.cc).
  void Benchmark(const HttpRequest& request, const RequestInfo& info, const std::vector<std::string>& path,
                 const HttpServer::Responder& respond);
  void StartBenchmarkWinner(const rapidjson::Document& body, const RequestInfo& info, const std::string& endpoint,
                            const HttpServer::Responder& respond);

  // Per-variant quality of the endpoint's predictions since its spec took
  // effect, as a JSON object keyed by variant (null without a store).
  void WriteQuality(JsonWriter& j, const Router& router) const;

  Deployments& deployments_;
  RolloutController& rollouts_;
  Benchmarker& benchmarks_;
  const AccessPolicy& access_;
  FeedbackJoin* const feedback_;
};

}  // namespace vigil
