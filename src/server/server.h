// Server: wires the parts of `vigil serve` together and owns their
// lifecycle: load the repository, listen, poll for changes, and on SIGTERM or
// SIGINT shut down in order (readiness off → stop accepting → drain
// in-flight requests, bounded by the shutdown timeout → stop schedulers).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace vigil {

struct ServerOptions {
  std::string model_repository;
  std::string host = "0.0.0.0";
  uint16_t http_port = 8000;
  int grpc_port = -1;    // -1 = no gRPC; 0 picks a free port
  int http_threads = 0;  // 0 = one per core
  size_t max_body_bytes = 64 << 20;
  // Open HTTP connections at most (more are answered 503 and closed); 0 =
  // what the process's file limit allows, keeping room for everything else.
  size_t max_connections = 0;
  // Request bodies still being received, across all connections.
  size_t max_buffered_bytes = 256 << 20;
  // A body must arrive within this many seconds of its header.
  double body_timeout_s = 30;
  // TLS for HTTP and gRPC (PEM files); with a client CA, mutual TLS.
  std::string tls_cert, tls_key, tls_client_ca;
  // CA bundle that signed an https:// --alert-webhook's certificate; empty = the system's.
  std::string alert_webhook_ca;
  double poll_interval_s = 0;  // 0 = load once at start
  double shutdown_timeout_s = 30;
  std::vector<std::string> required_models;
  // Control changes (deployments, model load/unload) need "Authorization:
  // Bearer <token>"; empty = loopback only.
  std::string admin_token;
  // Feedback needs this token (or the admin token); with neither, loopback only.
  std::string feedback_token;
  // --admin-allow: "CIDR,CIDR,..." whose clients may use the routes that
  // change something (with a token set, they also need the token); empty:
  // loopback, or anyone with a token.
  std::string admin_allow;
  // Threads for the routes that may block (store, model loads).
  int control_threads = 2;
  // Holds the SQLite store (deployments, their history); empty = no store.
  std::string data_dir = "vigil-data";
  // --store: a postgres:// URL, the store replicas share; when set it is
  // the store and data_dir is not used.
  std::string store_url;
  // With store_url: how often leadership is checked and tried; a leader
  // that dies is replaced within about one lease.
  double leader_lease_s = 5;
  // With store_url: how often other replicas' spec changes are read.
  double store_poll_s = 1;
  // With store_url: this replica's name among replicas (partial drift
  // windows and its serving-health alerts carry it); empty: the host name
  // and the HTTP port (in Kubernetes the host name is the pod's name).
  std::string replica_name;
  // Endpoint predictions go to the store (with one).
  bool log_predictions = true;
  // Share (0..1) of logged predictions stored with their inputs.
  double log_inputs_sample_rate = 0;
  // Benchmarks of an endpoint's competing models on those logged inputs
  // (rollout/benchmark.h): the share of one core their replays may take,
  // the sampled requests one run reads, and the spacing of automatic runs.
  double benchmark_max_cpu = 0.25;
  int64_t benchmark_rows = 5000;
  int64_t benchmark_min_interval_s = 900;
  // Logged predictions older than this, or past about this many rows, are
  // deleted (checked every minute); 0 = no limit.
  double prediction_retention_days = 30;
  int64_t prediction_max_rows = 10'000'000;
  // Firing and resolved alerts are posted here (Alertmanager webhook format); empty = none.
  std::string alert_webhook;
  // Alertmanager's base URL: alerts go to its API (POST /api/v2/alerts, as
  // Prometheus sends them), firing ones resent every alertmanager_resend_s
  // and valid for four times that; empty = none. alert_webhook_ca serves both.
  std::string alertmanager_url;
  double alertmanager_resend_s = 60;
  // How often monitoring checks for closed drift windows; 0 = the default (250 ms).
  int64_t monitoring_tick_ms = 0;
  // Stored drift windows older than this are deleted.
  double monitoring_retention_days = 30;
  // Serving health (latency, errors, queue, memory) is judged per window of this many seconds.
  double health_window_s = 30;
  // MemoryHigh fires when the process's resident memory is over this; 0 =
  // 90% of the smaller of the cgroup's limit and the machine's memory.
  uint64_t memory_limit_bytes = 0;
};

// A running server: listening, models loaded. `vigil serve` runs one until
// a signal; `vigil profile` runs one in-process.
class Server {
 public:
  // Listens (answering "not ready" meanwhile), loads the repository, then
  // reports ready.
  static StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();

  uint16_t http_port() const;
  int grpc_port() const;  // -1 when gRPC is off
  // Re-scans the repository (what --poll-interval does).
  void Poll();
  // Puts in force the spec changes other replicas made in the shared store
  // (every --store-poll-s, with --store only: one machine has no one to sync with).
  void SyncStore();
  // Orderly shutdown: readiness off, stop accepting, drain in-flight work up
  // to the shutdown timeout, cancel the rest, stop. `reason` is logged.
  void Shutdown(std::string_view reason);

  struct Parts;

 private:
  explicit Server(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

// Runs until SIGTERM/SIGINT; returns OK after an orderly shutdown. Blocks
// those signals in every thread it starts.
Status RunServer(const ServerOptions& options);

}  // namespace vigil
