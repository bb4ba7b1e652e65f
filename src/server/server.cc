#include "server/server.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>
#include <ctime>
#include <thread>

#include "core/logging.h"
#include "monitoring/health.h"
#include "monitoring/serving_metrics.h"
#include "net/access.h"
#include "net/control_workers.h"
#include "net/http_server.h"
#include "repository/model_repository.h"
#include "rollout/serving_benchmark_world.h"
#include "rollout/serving_rollout_world.h"
#include "routing/deployments.h"
#include "routing/inference_service.h"
#include "routing/serving_world.h"
#include "server/alert_webhook.h"
#include "server/grpc_server.h"
#include "server/monitoring_api.h"
#include "server/rest_api.h"
#include "store/prediction_log.h"

namespace vigil {
namespace {

// Raises the soft limit on open files to the hard one (servers hold many
// sockets); returns the soft limit now in force.
size_t RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur == RLIM_INFINITY ? 1 << 20 : static_cast<size_t>(limit.rlim_cur);
}

// HTTP connections the file limit leaves room for: a quarter of it, or 256,
// is kept for models, the store, gRPC and the webhook.
size_t DefaultMaxConnections(size_t file_limit) {
  const size_t reserve = std::max<size_t>(256, file_limit / 4);
  return file_limit > reserve + 64 ? std::min<size_t>(file_limit - reserve, 100'000) : 64;
}

}  // namespace

// Declared in the order they start; destroyed in reverse.
struct Server::Parts {
  ServerOptions options;
  MetricsRegistry registry;
  ServingMetrics metrics{registry};
  ServerState state;
  AccessPolicy access;
  std::unique_ptr<Store> store;
  // Declared before everything that reads it, so destroyed after.
  std::unique_ptr<Leadership> leadership;
  std::unique_ptr<ModelRepository> repository;
  std::unique_ptr<Deployments> deployments;
  std::unique_ptr<PredictionLog> prediction_log;
  std::unique_ptr<InferenceService> service;
  std::atomic<uint16_t> http_port{0};           // once listening: for the links in alert notifications
  std::unique_ptr<AlertNotifier> notifier;      // --alert-webhook
  std::unique_ptr<AlertNotifier> alertmanager;  // --alertmanager-url
  std::unique_ptr<AlertTracker> alerts;
  std::unique_ptr<AlertResender> resender;         // firing alerts to Alertmanager again, every resend interval
  std::unique_ptr<DriftStore> memory_drift_store;  // without a store
  std::unique_ptr<AlertStore> memory_alert_store;  // likewise
  std::unique_ptr<FeedbackJoin> feedback;          // with a store
  std::unique_ptr<ServingWorld> world;
  std::unique_ptr<MonitorLoop> monitor;
  std::unique_ptr<MonitoringApi> monitoring;
  std::unique_ptr<ServingRolloutWorld> rollout_world;
  std::unique_ptr<RolloutStore> memory_rollout_store;  // without a store
  std::unique_ptr<RolloutController> rollouts;
  std::unique_ptr<ServingBenchmarkWorld> benchmark_world;
  std::unique_ptr<Benchmarker> benchmarks;
  std::unique_ptr<AdminApi> admin;
  std::unique_ptr<ControlWorkers> control;
  std::unique_ptr<RestApi> api;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<GrpcServer> grpc;
  bool stopped = false;
};

Server::Server(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Server::~Server() { Shutdown("destroyed"); }

uint16_t Server::http_port() const { return parts_->http->port(); }
int Server::grpc_port() const { return parts_->grpc ? parts_->grpc->port() : -1; }
void Server::SyncStore() {
  parts_->deployments->SyncFromStore();
  if (parts_->state.replica.empty()) return;
  if (Status s = parts_->deployments->ShareCounts(parts_->state.replica); !s.ok()) {
    spdlog::warn("event=frontend_counts_not_shared error={}", LogValue(s.message()));
  }
}

void Server::Poll() {
  parts_->repository->Poll();
  parts_->deployments->LoadDirectory();
  parts_->metrics.repository_polls().Inc();  // after both: a test that waits for it sees what they did
}

StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  auto p = std::make_unique<Parts>();
  p->options = options;
  p->state.required_models = options.required_models;
  std::optional<std::vector<AddressRange>> admin_allow;
  if (!options.admin_allow.empty()) {
    VIGIL_ASSIGN_OR_RETURN(admin_allow, ParseAddressRanges(options.admin_allow));
  }
  p->access = AccessPolicy(options.admin_token, options.feedback_token, std::move(admin_allow));

  p->registry
      .AddGauge("vigil_build_info", "Vigil's version and the compiler that built it; always 1.",
                {"version", "compiler"})
      .WithLabels({
        VIGIL_VERSION,
#if defined(__clang__)
            "clang " __clang_version__
#else
            "gcc " __VERSION__
#endif
      })
      .Set(1);
  ModelRepository::Options ro;
  ro.root = options.model_repository;
  ro.metrics = &p->metrics;
  VIGIL_ASSIGN_OR_RETURN(p->repository, ModelRepository::Create(ro));
  Gauge& leader_gauge = p->registry
                            .AddGauge("vigil_leader",
                                      "1 while this replica leads (rollouts, alert notifications and retention run "
                                      "there), else 0; one machine alone always leads.",
                                      {})
                            .WithLabels({});
  Gauge& epoch_gauge =
      p->registry.AddGauge("vigil_leader_epoch", "The leader epoch this replica leads in; 0 while it follows.", {})
          .WithLabels({});
  if (!options.store_url.empty()) {
    VIGIL_ASSIGN_OR_RETURN(p->store, OpenPostgresStore(options.store_url));
    spdlog::info("event=store_open store=postgres url={}", LogValue(RedactedUrl(options.store_url)));
    VIGIL_ASSIGN_OR_RETURN(
        p->leadership,
        PostgresLeadership(options.store_url,
                           std::chrono::milliseconds(static_cast<int64_t>(options.leader_lease_s * 1000)),
                           [&leader_gauge, &epoch_gauge](bool leads, int64_t e) {
                             leader_gauge.Set(leads ? 1 : 0);
                             epoch_gauge.Set(static_cast<double>(e));
                           }));
  } else if (!options.data_dir.empty()) {
    VIGIL_ASSIGN_OR_RETURN(p->store, OpenSqliteStore(options.data_dir));
    spdlog::info("event=store_open store=sqlite path={}",
                 LogValue((std::filesystem::path(options.data_dir) / "vigil.db").string()));
  }
  if (!p->leadership) p->leadership = SoleLeadership();
  leader_gauge.Set(p->leadership->IsLeader() ? 1 : 0);
  epoch_gauge.Set(static_cast<double>(p->leadership->Epoch()));
  p->state.leadership = p->leadership.get();
  // What must run once among replicas asks this; one machine alone needs no asking.
  const Leadership* shared_leadership = options.store_url.empty() ? nullptr : p->leadership.get();
  std::string replica;  // this replica's name among replicas; empty on one machine
  if (shared_leadership) {
    replica = options.replica_name;
    if (replica.empty()) {
      char host[256] = {};
      if (gethostname(host, sizeof host - 1) != 0 || !host[0]) std::strcpy(host, "vigil");
      replica = fmt::format("{}:{}", host,
                            options.http_port != 0 ? static_cast<int>(options.http_port) : static_cast<int>(getpid()));
    }
    spdlog::info("event=replica name={}", LogValue(replica));
  }
  p->state.replica = replica;

  p->deployments = std::make_unique<Deployments>(
      Deployments::Options{.catalog = RepositoryCatalog(*p->repository),
                           .directory = std::filesystem::path(options.model_repository) / "deployments",
                           .store = p->store.get()});
  if (p->store) {
    if (options.log_predictions) {
      PredictionLog::Options log_options;
      log_options.retention_ms = static_cast<int64_t>(options.prediction_retention_days * 24 * 3600 * 1000);
      log_options.max_rows = options.prediction_max_rows;
      log_options.leadership = shared_leadership;
      log_options.on_records = [m = p->metrics.prediction_log()](size_t written, size_t dropped) {
        if (written) m.written->Inc(static_cast<double>(written));
        if (dropped) m.dropped->Inc(static_cast<double>(dropped));
      };
      p->prediction_log = std::make_unique<PredictionLog>(*p->store, std::move(log_options));
    }
  }
  VIGIL_ASSIGN_OR_RETURN(
      p->service, InferenceService::Create(*p->repository, {.metrics = &p->metrics,
                                                            .deployments = p->deployments.get(),
                                                            .prediction_log = p->prediction_log.get(),
                                                            .inputs_sample_rate = options.log_inputs_sample_rate}));
  if (p->store) {
    p->feedback = std::make_unique<FeedbackJoin>(*p->store, p->prediction_log.get());
  } else {
    p->memory_drift_store = MemoryDriftStore();
  }
  DriftStore* drift_store = p->store ? static_cast<DriftStore*>(p->store.get()) : p->memory_drift_store.get();
  p->world = std::make_unique<ServingWorld>(*p->repository, *p->deployments);
  MonitorLoop::Options mo{
      .world = p->world.get(), .metrics = &p->metrics, .drift_store = drift_store, .feedback = p->feedback.get()};
  mo.on_rung_change = [deployments = p->deployments.get()](const std::string& endpoint,
                                                           const WatchedEndpoint::Overload& from,
                                                           const WatchedEndpoint::Overload& to) {
    const Status s = deployments->Note(
        endpoint, {"overload", "rung",
                   fmt::format("rung {} ({}) -> {} ({})", from.rung, from.rung_name.empty() ? "full" : from.rung_name,
                               to.rung, to.rung_name)});
    if (!s.ok())
      spdlog::warn("event=rung_change_not_recorded endpoint={} error={}", LogValue(endpoint), LogValue(s.message()));
  };
  if (options.monitoring_tick_ms > 0) mo.tick = std::chrono::milliseconds(options.monitoring_tick_ms);
  mo.retention_ms = static_cast<int64_t>(options.monitoring_retention_days * 24 * 3600 * 1000);
  mo.health_window = std::chrono::milliseconds(static_cast<int64_t>(options.health_window_s * 1000));
  mo.memory_limit_bytes = options.memory_limit_bytes > 0 ? options.memory_limit_bytes : DefaultMemoryLimitBytes();
  const std::string scheme = options.tls_cert.empty() ? "http://" : "https://";
  auto external_url = [parts = p.get(), base = scheme + options.host + ":"] {
    return base + std::to_string(parts->http_port.load());
  };
  std::vector<AlertNotifier*> notifiers;
  if (!options.alert_webhook.empty()) {
    VIGIL_ASSIGN_OR_RETURN(AlertNotifier::Poster poster,
                           HttpWebhookPoster(options.alert_webhook, options.alert_webhook_ca, external_url));
    p->notifier = std::make_unique<AlertNotifier>(std::move(poster), AlertNotifier::Options{.registry = &p->registry});
    notifiers.push_back(p->notifier.get());
  }
  const auto resend = std::chrono::milliseconds(static_cast<int64_t>(options.alertmanager_resend_s * 1000));
  if (!options.alertmanager_url.empty()) {
    VIGIL_ASSIGN_OR_RETURN(
        AlertNotifier::Poster poster,
        AlertmanagerApiPoster(options.alertmanager_url, options.alert_webhook_ca, external_url, 4 * resend.count()));
    p->alertmanager = std::make_unique<AlertNotifier>(
        std::move(poster), AlertNotifier::Options{.registry = &p->registry, .receiver = "alertmanager"});
    notifiers.push_back(p->alertmanager.get());
  }
  if (!p->store) p->memory_alert_store = MemoryAlertStore();
  AlertStore& alert_store = p->store ? static_cast<AlertStore&>(*p->store) : *p->memory_alert_store;
  p->alerts = std::make_unique<AlertTracker>(
      alert_store,
      AlertTracker::Options{
          .notifiers = notifiers, .leadership = shared_leadership, .replica = replica, .registry = &p->registry});
  if (p->alertmanager) p->resender = std::make_unique<AlertResender>(*p->alerts, *p->alertmanager, resend);
  mo.alerts = p->alerts.get();
  mo.replica = replica;
  mo.leadership = shared_leadership;
  if (shared_leadership) {
    // Partial windows are written as they close (one tick); merged a poll after.
    mo.merge_every = std::chrono::milliseconds(static_cast<int64_t>(options.store_poll_s * 1000));
    mo.merge_grace = std::max(std::chrono::milliseconds(1000), 4 * mo.tick);
  }
  VIGIL_ASSIGN_OR_RETURN(p->monitor, MonitorLoop::Create(mo));
  // The rollout controller reads the prediction log; without one every
  // analysis is an Error that says so.
  p->rollout_world = std::make_unique<ServingRolloutWorld>(
      *p->deployments, p->prediction_log ? static_cast<FeedbackStore*>(p->store.get()) : nullptr, replica);
  if (!p->store) p->memory_rollout_store = MemoryRolloutStore();
  RolloutStore& rollout_store = p->store ? static_cast<RolloutStore&>(*p->store) : *p->memory_rollout_store;
  // Replicas put a step's new spec in force at their next store poll (and
  // the one that changed it at once): a poll and a second after a step
  // changes, every replica routes by it.
  const auto rollout_settle = shared_leadership
                                  ? std::chrono::milliseconds(static_cast<int64_t>(options.store_poll_s * 1000 + 1000))
                                  : std::chrono::milliseconds(0);
  VIGIL_ASSIGN_OR_RETURN(p->rollouts, RolloutController::Create({.world = p->rollout_world.get(),
                                                                 .store = &rollout_store,
                                                                 .clock = nullptr,
                                                                 .alerts = p->alerts.get(),
                                                                 .registry = &p->registry,
                                                                 .background = true,
                                                                 .leadership = shared_leadership,
                                                                 .settle = rollout_settle}));
  p->benchmark_world = std::make_unique<ServingBenchmarkWorld>(*p->deployments, *p->service);
  VIGIL_ASSIGN_OR_RETURN(
      p->benchmarks,
      Benchmarker::Create({.world = p->benchmark_world.get(),
                           .feedback = p->prediction_log ? static_cast<FeedbackStore*>(p->store.get()) : nullptr,
                           .store = &rollout_store,
                           .alerts = p->alerts.get(),
                           .clock = nullptr,
                           .benchmark = {.max_rows = options.benchmark_rows,
                                         .max_cpu = options.benchmark_max_cpu,
                                         .min_interval_s = options.benchmark_min_interval_s},
                           .background = true}));
  p->admin = std::make_unique<AdminApi>(*p->deployments, *p->rollouts, *p->benchmarks, p->access, p->feedback.get());
  p->monitoring = std::make_unique<MonitoringApi>(MonitoringApi::Options{.repository = p->repository.get(),
                                                                         .deployments = p->deployments.get(),
                                                                         .loop = p->monitor.get(),
                                                                         .alerts = p->alerts.get(),
                                                                         .drift_store = drift_store,
                                                                         .feedback = p->feedback.get()});
  p->control = std::make_unique<ControlWorkers>(ControlWorkers::Options{.threads = options.control_threads});
  VIGIL_ASSIGN_OR_RETURN(p->api, RestApi::Create({.service = p->service.get(),
                                                  .repository = p->repository.get(),
                                                  .metrics = &p->metrics,
                                                  .state = &p->state,
                                                  .access = &p->access,
                                                  .admin = p->admin.get(),
                                                  .monitoring = p->monitoring.get(),
                                                  .control = p->control.get()}));

  HttpServer::Options ho;
  ho.host = options.host;
  ho.port = options.http_port;
  ho.threads = options.http_threads;
  ho.max_body_bytes = options.max_body_bytes;
  const size_t file_limit = RaiseFileLimit();
  ho.max_connections = options.max_connections > 0 ? options.max_connections : DefaultMaxConnections(file_limit);
  ho.max_buffered_bytes = options.max_buffered_bytes;
  ho.body_timeout = std::chrono::milliseconds(static_cast<int64_t>(options.body_timeout_s * 1000));
  ho.metrics = &p->metrics.http();
  ho.tls_cert = options.tls_cert;
  ho.tls_key = options.tls_key;
  ho.tls_client_ca = options.tls_client_ca;
  spdlog::info("event=http_limits max_connections={} file_limit={} max_body_bytes={} max_buffered_bytes={}",
               ho.max_connections, file_limit, ho.max_body_bytes, ho.max_buffered_bytes);
  ho.dispatch_scope = [] { return std::make_shared<InferenceService::BatchScope>(); };
  RestApi* api = p->api.get();
  VIGIL_ASSIGN_OR_RETURN(
      p->http, HttpServer::Create(ho, [api](HttpRequest&& req, const RequestInfo& info, HttpServer::Responder respond) {
        api->Handle(std::move(req), info, std::move(respond));
      }));
  // Live (and answering "not ready") while the models load.
  p->http->Start();
  const bool tls = !options.tls_cert.empty();
  spdlog::info("event=listening protocol=http host={} port={} tls={}", options.host, p->http->port(),
               tls ? (options.tls_client_ca.empty() ? "on" : "mutual") : "off");
  p->http_port = p->http->port();
  if (options.grpc_port >= 0) {
    GrpcServer::Options go;
    go.host = options.host;
    go.port = options.grpc_port;
    go.max_message_bytes = options.max_body_bytes;
    go.tls_cert = options.tls_cert;
    go.tls_key = options.tls_key;
    go.tls_client_ca = options.tls_client_ca;
    VIGIL_ASSIGN_OR_RETURN(p->grpc,
                           GrpcServer::Create(go, *p->service, *p->repository, p->state, p->access, *p->control));
    spdlog::info("event=listening protocol=grpc host={} port={} tls={}", options.host, p->grpc->port(),
                 tls ? (options.tls_client_ca.empty() ? "on" : "mutual") : "off");
  }

  p->repository->Poll();
  p->deployments->Restore();
  p->deployments->LoadDirectory();
  p->state.ready.store(true);
  size_t ready = 0, total = 0;
  for (const auto& row : p->repository->Index()) {
    ++total;
    ready += row.state == VersionState::kReady;
  }
  spdlog::info("event=server_ready models_ready={} models_total={} repository={}", ready, total,
               LogValue(options.model_repository));
  return std::unique_ptr<Server>(new Server(std::move(p)));
}

void Server::Shutdown(std::string_view reason) {
  Parts& p = *parts_;
  if (p.stopped) return;
  p.stopped = true;
  using Clock = std::chrono::steady_clock;
  p.state.ready.store(false);
  spdlog::info("event=shutdown_started reason={} in_flight={}", LogValue(reason), p.http->InFlight());
  p.http->StopAccepting();
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(p.options.shutdown_timeout_s));
  while (p.http->InFlight() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (p.grpc) {
    // Running calls finish while the schedulers still run; the rest is cancelled.
    const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
    p.grpc->Shutdown(std::max(0.0, left));
  }
  const int64_t abandoned = p.http->InFlight();
  if (abandoned > 0) {
    spdlog::warn("event=shutdown_timeout abandoned_requests={} timeout_s={}", abandoned, p.options.shutdown_timeout_s);
  }
  // Schedulers finish first (their callbacks post to the HTTP I/O context),
  // then the HTTP threads stop. Past the timeout, queued work is cancelled
  // rather than run, so the bound holds.
  p.control->Stop();     // control requests already taken finish; none are left waiting
  p.rollouts->Stop();    // no decision is taken while the models stop
  p.benchmarks->Stop();  // no replay is queued while they stop
  p.service->Stop();     // no more shadow copies
  p.repository->StopAll(abandoned > 0 ? Scheduler::StopMode::kCancel : Scheduler::StopMode::kDrain);
  // Let the I/O threads write the answers of cancelled requests.
  const auto flush_deadline = Clock::now() + std::chrono::seconds(1);
  while (p.http->InFlight() > 0 && Clock::now() < flush_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  p.http->Stop();
  spdlog::info("event=shutdown_complete");
}

Status RunServer(const ServerOptions& options) {
  // Block the shutdown signals before any thread starts, so only the
  // sigtimedwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  VIGIL_ASSIGN_OR_RETURN(auto server, Server::Start(options));
  using Clock = std::chrono::steady_clock;
  const auto interval =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.poll_interval_s));
  auto next_poll = Clock::now() + interval;
  const auto sync_interval =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.store_poll_s));
  auto next_sync = Clock::now() + sync_interval;
  int received = 0;
  while (received == 0) {
    timespec wait{0, 100 * 1000 * 1000};
    const int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      received = sig;
      break;
    }
    if (options.poll_interval_s > 0 && Clock::now() >= next_poll) {
      server->Poll();
      next_poll = Clock::now() + interval;
    }
    // Replicas: other replicas' spec changes, whether or not the repository is polled.
    if (!options.store_url.empty() && Clock::now() >= next_sync) {
      server->SyncStore();
      next_sync = Clock::now() + sync_interval;
    }
  }
  server->Shutdown(received == SIGTERM ? "SIGTERM" : "SIGINT");
  return Status::Ok();
}

}  // namespace vigil
