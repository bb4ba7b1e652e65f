// MonitoringApi: the monitoring routes, read-only.
//
//   GET /v1/monitoring/{model or endpoint}/drift?from=&to=&limit=
//       each version's drift monitor, reference and last health window, and
//       the stored drift windows
//   GET /v1/monitoring/{endpoint}/quality?window_s=&from=&to=
//       per window of prediction time and per variant, quality from joined
//       feedback and the accuracy estimated before labels come
//   GET /v1/alerts
//
// Decode, ask the monitoring components, encode; the work is theirs
// (monitoring/monitor_loop, monitoring/feedback_join, monitoring/alerts).
// Handlers may block on the store: they run on control threads.
#pragma once

#include <string>
#include <vector>

#include "monitoring/alerts.h"
#include "monitoring/feedback_join.h"
#include "monitoring/monitor_loop.h"
#include "net/http_server.h"
#include "repository/model_repository.h"
#include "routing/deployments.h"
#include "store/store.h"

namespace vigil {

class MonitoringApi {
 public:
  struct Options {
    const ModelRepository* repository = nullptr;  // required
    const Deployments* deployments = nullptr;     // required
    const MonitorLoop* loop = nullptr;            // required
    const AlertTracker* alerts = nullptr;         // required
    DriftStore* drift_store = nullptr;            // required
    FeedbackJoin* feedback = nullptr;             // null without a store (quality answers 503)
  };
  explicit MonitoringApi(Options options) : o_(options) {}

  // `path` is the target split on '/'.
  void Handle(const HttpRequest& request, const std::vector<std::string>& path,
              const HttpServer::Responder& respond) const;

 private:
  HttpResponse Drift(const std::string& name, std::string_view query) const;
  HttpResponse Quality(const std::string& endpoint, std::string_view query) const;

  const Options o_;
};

}  // namespace vigil
