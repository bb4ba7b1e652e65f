#include "server/server.h"

#include <csignal>
#include <ctime>
#include <thread>

#include "core/logging.h"
#include "monitoring/serving_metrics.h"
#include "repository/model_repository.h"
#include "server/grpc_server.h"
#include "server/http_server.h"
#include "server/inference_service.h"
#include "server/rest_api.h"

namespace vigil {

Status RunServer(const ServerOptions& options) {
  // Block the shutdown signals before any thread starts, so only the
  // sigtimedwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  MetricsRegistry registry;
  ServingMetrics metrics(registry);
  ServerState state;
  state.required_models = options.required_models;

  ModelRepository::Options ro;
  ro.root = options.model_repository;
  ro.metrics = &metrics;
  VIGIL_ASSIGN_OR_RETURN(auto repository, ModelRepository::Create(ro));
  InferenceService service(*repository, &metrics);
  RestApi api(service, *repository, metrics, state);

  HttpServer::Options ho;
  ho.host = options.host;
  ho.port = options.http_port;
  ho.threads = options.http_threads;
  ho.max_body_bytes = options.max_body_bytes;
  ho.dispatch_scope = [] { return std::make_shared<InferenceService::BatchScope>(); };
  VIGIL_ASSIGN_OR_RETURN(auto http, HttpServer::Create(ho, [&api](HttpRequest&& req, HttpServer::Responder respond) {
                           api.Handle(std::move(req), std::move(respond));
                         }));
  // Live (and answering "not ready") while the models load.
  http->Start();
  spdlog::info("event=listening protocol=http host={} port={}", options.host, http->port());
  std::unique_ptr<GrpcServer> grpc;
  if (options.grpc_port >= 0) {
    GrpcServer::Options go;
    go.host = options.host;
    go.port = options.grpc_port;
    VIGIL_ASSIGN_OR_RETURN(grpc, GrpcServer::Create(go, service, *repository, state));
    spdlog::info("event=listening protocol=grpc host={} port={}", options.host, grpc->port());
  }

  repository->Poll();
  state.ready.store(true);
  size_t ready = 0, total = 0;
  for (const auto& row : repository->Index()) {
    ++total;
    ready += row.state == VersionState::kReady;
  }
  spdlog::info("event=server_ready models_ready={} models_total={} repository={}", ready, total,
               LogValue(options.model_repository));

  using Clock = std::chrono::steady_clock;
  auto next_poll = Clock::now() +
                   std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.poll_interval_s));
  int received = 0;
  while (received == 0) {
    timespec wait{0, 100 * 1000 * 1000};
    const int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      received = sig;
      break;
    }
    if (options.poll_interval_s > 0 && Clock::now() >= next_poll) {
      repository->Poll();
      next_poll = Clock::now() +
                  std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.poll_interval_s));
    }
  }

  state.ready.store(false);
  spdlog::info("event=shutdown_started signal={} in_flight={}", received == SIGTERM ? "SIGTERM" : "SIGINT",
               http->InFlight());
  http->StopAccepting();
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(options.shutdown_timeout_s));
  while (http->InFlight() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (grpc) {
    // Running calls finish while the schedulers still run; the rest is cancelled.
    const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
    grpc->Shutdown(std::max(0.0, left));
  }
  const int64_t abandoned = http->InFlight();
  if (abandoned > 0) {
    spdlog::warn("event=shutdown_timeout abandoned_requests={} timeout_s={}", abandoned, options.shutdown_timeout_s);
  }
  // Schedulers finish first (their callbacks post to the HTTP I/O context),
  // then the HTTP threads stop. Past the timeout, queued work is cancelled
  // rather than run, so the bound holds.
  repository->StopAll(abandoned > 0 ? Scheduler::StopMode::kCancel : Scheduler::StopMode::kDrain);
  // Let the I/O threads write the answers of cancelled requests.
  const auto flush_deadline = Clock::now() + std::chrono::seconds(1);
  while (http->InFlight() > 0 && Clock::now() < flush_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  http->Stop();
  spdlog::info("event=shutdown_complete");
  return Status::Ok();
}

}  // namespace vigil
