// RestApi: the Open Inference Protocol's REST routes plus Triton's
// repository, config and statistics extensions and /metrics. Thin: it
// decodes, calls the InferenceService or ModelRepository, and encodes; all
// Status → HTTP code mapping is HttpStatusFor() (server/status_codes.h).
// Thread-safe.
#pragma once

#include <atomic>
#include <memory>

#include "monitoring/metrics.h"
#include "net/http_server.h"
#include "routing/inference_service.h"
#include "server/admin_api.h"
#include "server/http_replies.h"
#include "server/server_state.h"
#include "server/status_codes.h"

namespace vigil {

class MonitoringApi;
class ControlWorkers;

class RestApi {
 public:
  struct Options {  // all required
    InferenceService* service = nullptr;
    ModelRepository* repository = nullptr;
    ServingMetrics* metrics = nullptr;
    const ServerState* state = nullptr;
    const AccessPolicy* access = nullptr;
    AdminApi* admin = nullptr;
    const MonitoringApi* monitoring = nullptr;
    // Routes that may block (deployments, feedback, monitoring, alerts,
    // repository load/unload/index) run on its threads, never on an HTTP
    // I/O thread; with its queue full they answer 503.
    ControlWorkers* control = nullptr;
  };
  static StatusOr<std::unique_ptr<RestApi>> Create(Options options);

  void Handle(HttpRequest&& request, const RequestInfo& info, HttpServer::Responder respond);

 private:
  // The control routes; `p` is the path split on '/'.
  void HandleControl(const HttpRequest& request, const RequestInfo& info, const std::vector<std::string>& p,
                     const HttpServer::Responder& respond);
  void Infer(HttpRequest&& request, const std::string& model, const std::string& version,
             HttpServer::Responder respond);
  HttpResponse ServerMetadata() const;
  HttpResponse ModelMetadata(const std::string& model, const std::string& version) const;
  HttpResponse ModelReady(const std::string& model, const std::string& version) const;
  HttpResponse ModelConfigJson(const std::string& model, const std::string& version) const;
  HttpResponse ModelStats(const std::string& model, const std::string& version) const;
  HttpResponse RepositoryIndex(const HttpRequest& request) const;
  static StatusOr<std::optional<std::string>> LoadConfigParameter(const std::string& body);
  HttpResponse ServerReady() const;
  Counter& HttpCounter(unsigned code);

  explicit RestApi(const Options& o);

  InferenceService& service_;
  ModelRepository& repository_;
  ServingMetrics& metrics_;
  const ServerState& state_;
  const AccessPolicy& access_;
  AdminApi& admin_;
  const MonitoringApi& monitoring_;
  ControlWorkers& control_;
  std::vector<Counter*> code_counters_;  // indexed by status code, prefilled
};

}  // namespace vigil
