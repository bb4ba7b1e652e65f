// vigil serve: the server, in the foreground until SIGTERM/SIGINT.
#include <cctype>
#include <cstdio>

#include "cli/commands.h"
#include "core/logging.h"
#include "net/access.h"
#include "rollout/benchmark.h"
#include "server/server.h"

namespace vigil::cli {
namespace {

// Where `vigil serve` gets its tokens: a flag, a file or the environment.
struct TokenFlags {
  std::string admin, admin_file, feedback, feedback_file;
  bool on_command_line = false;  // a token given as a flag, visible in ps

  vigil::Status Resolve(int argc, char** argv, vigil::ServerOptions* so) {
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      for (std::string_view flag : {"--admin-token", "--feedback-token"}) {
        if (arg == flag || (arg.substr(0, flag.size()) == flag && arg.size() > flag.size() && arg[flag.size()] == '='))
          on_command_line = true;
      }
    }
    if (!admin_file.empty()) {
      VIGIL_ASSIGN_OR_RETURN(admin, vigil::ReadTokenFile(admin_file));
    }
    if (!feedback_file.empty()) {
      VIGIL_ASSIGN_OR_RETURN(feedback, vigil::ReadTokenFile(feedback_file));
    }
    so->admin_token = admin;
    so->feedback_token = feedback;
    return vigil::Status::Ok();
  }
};

int Serve(const vigil::ServerOptions& options, const std::string& log_level, bool token_on_command_line) {
  if (auto s = vigil::InitLogging(log_level); !s.ok()) {
    std::fprintf(stderr, "vigil serve: %s\n", s.message().c_str());
    return 2;
  }
  if (token_on_command_line) {
    spdlog::warn(
        "event=token_on_command_line detail={}",
        vigil::LogValue("a token given as --admin-token/--feedback-token shows in ps and the shell's history; use "
                        "--admin-token-file, --feedback-token-file or VIGIL_ADMIN_TOKEN/VIGIL_FEEDBACK_TOKEN"));
  }
  const vigil::Status s = vigil::RunServer(options);
  if (!s.ok()) {
    spdlog::error("event=server_failed error={}", vigil::LogValue(s.message()));
    std::fprintf(stderr, "vigil serve: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

struct ServeState {
  vigil::ServerOptions so;
  std::string log_level = "info";
  TokenFlags tokens;
  bool no_prediction_log = false;
  double memory_limit_mb = 0;
};

}  // namespace

Command AddServe(CLI::App& parent, int argc, char** argv) {
  auto st = std::make_shared<ServeState>();
  CLI::App* serve = parent.add_subcommand("serve", "Serve the models of a model repository over HTTP and gRPC.");
  serve
      ->add_option("--model-repository", st->so.model_repository,
                   "Folder holding <model>/config.yaml and <model>/<version>/model.<ext>")
      ->required()
      ->check(CLI::ExistingDirectory);
  serve->add_option("--http-port", st->so.http_port, "HTTP port; 0 picks a free port (the log says which)")
      ->default_val(8000);
  serve
      ->add_option("--grpc-port", st->so.grpc_port,
                   "gRPC port (inference.GRPCInferenceService); 0 picks a free port; -1 (default) = no gRPC")
      ->default_val(-1)
      ->check(CLI::Range(-1, 65535));
  serve->add_option("--host", st->so.host, "Address to listen on")->default_val("0.0.0.0");
  serve
      ->add_option("--poll-interval", st->so.poll_interval_s,
                   "Seconds between re-scans of the repository for new, changed or removed versions; 0 = load once")
      ->default_val(0)
      ->check(CLI::Range(0.0, 86400.0));
  serve->add_option("--log-level", st->log_level, "trace, debug, info, warn, error or off")->default_val("info");
  serve
      ->add_option("--shutdown-timeout", st->so.shutdown_timeout_s,
                   "Seconds to let in-flight requests finish after SIGTERM/SIGINT")
      ->default_val(30)
      ->check(CLI::Range(0.0, 3600.0));
  serve->add_option("--http-threads", st->so.http_threads, "HTTP I/O threads; 0 = one per core")
      ->default_val(0)
      ->check(CLI::Range(0, 256));
  serve
      ->add_option("--max-body-bytes", st->so.max_body_bytes,
                   "Largest request body (and gRPC message); larger gets 413")
      ->default_val(64 << 20)
      ->check(CLI::Range(size_t{1}, size_t{2} << 30));
  serve
      ->add_option("--max-connections", st->so.max_connections,
                   "Open HTTP connections at most; more are answered 503 and closed (counted in "
                   "vigil_http_connections_refused_total). 0 = what the file limit leaves room for")
      ->default_val(0)
      ->check(CLI::Range(size_t{0}, size_t{1'000'000}));
  serve
      ->add_option("--max-buffered-bytes", st->so.max_buffered_bytes,
                   "Request bodies still being received, across all connections, at most this many bytes; past it "
                   "new bodies get 503")
      ->default_val(256 << 20)
      ->check(CLI::Range(size_t{1} << 16, size_t{64} << 30));
  serve
      ->add_option("--body-timeout", st->so.body_timeout_s,
                   "Seconds a request body may take to arrive after its header; slower ones get 408")
      ->default_val(30)
      ->check(CLI::Range(0.1, 3600.0));
  auto* admin_token =
      serve
          ->add_option("--admin-token", st->tokens.admin,
                       "Token that control changes (deployments, model load/unload) must carry as 'Authorization: "
                       "Bearer <token>'; without one they are accepted only from loopback. Visible in ps: prefer "
                       "--admin-token-file or VIGIL_ADMIN_TOKEN")
          ->envname("VIGIL_ADMIN_TOKEN");
  serve
      ->add_option("--admin-token-file", st->tokens.admin_file, "Read the admin token from the first line of this file")
      ->excludes(admin_token);
  auto* feedback_token =
      serve
          ->add_option("--feedback-token", st->tokens.feedback,
                       "Token that /v1/feedback must carry (the admin token works too); without either, feedback is "
                       "accepted only from loopback. Visible in ps: prefer --feedback-token-file or "
                       "VIGIL_FEEDBACK_TOKEN")
          ->envname("VIGIL_FEEDBACK_TOKEN");
  serve->add_option("--feedback-token-file", st->tokens.feedback_file, "Read the feedback token from this file")
      ->excludes(feedback_token);
  serve->add_option("--admin-allow", st->so.admin_allow,
                    "Addresses (CIDR,CIDR,...) from which deployment changes, model load/unload and feedback are "
                    "accepted; default loopback without a token. Given, it holds with tokens too (both are needed)");
  auto* tls_cert = serve->add_option("--tls-cert", st->so.tls_cert,
                                     "TLS certificate chain (PEM) for HTTPS and gRPC over TLS; plain-text clients "
                                     "are then refused");
  auto* tls_key = serve->add_option("--tls-key", st->so.tls_key, "The certificate's private key (PEM)");
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  serve
      ->add_option("--tls-client-ca", st->so.tls_client_ca,
                   "CA (PEM) whose certificates clients must present: mutual TLS")
      ->needs(tls_cert);
  serve->add_option(
      "--alert-webhook-ca", st->so.alert_webhook_ca,
      "CA (PEM) that signed an https:// --alert-webhook's or --alertmanager-url's certificate; default the system's");
  serve
      ->add_option("--control-threads", st->so.control_threads,
                   "Threads for routes that may block (deployments, feedback, monitoring reads, model loads)")
      ->default_val(2)
      ->check(CLI::Range(1, 64));
  auto* data_dir =
      serve->add_option("--data-dir", st->so.data_dir, "Folder of the store (vigil.db: deployments and their history)")
          ->default_val("vigil-data");
  serve
      ->add_option("--store", st->so.store_url,
                   "postgres://user[:password]@host:port/db: the store replicas share (instead of --data-dir; "
                   "the password may also come from PGPASSWORD or ~/.pgpass)")
      ->check(CheckStoreUrl)
      ->excludes(data_dir);
  serve
      ->add_option("--store-poll-s", st->so.store_poll_s,
                   "With --store: how often specs changed through other replicas are read (and put in force here)")
      ->default_val(1)
      ->check(CLI::Range(0.05, 3600.0));
  serve
      ->add_option("--replica-name", st->so.replica_name,
                   "With --store: this replica's name (its partial drift windows and serving-health alerts carry "
                   "it); default: host name and HTTP port")
      ->check(CLI::Validator(
          [](const std::string& name) {
            if (name.empty() || name.size() > 253) return std::string("a replica name has 1 to 253 characters");
            for (unsigned char c : name) {
              if (!std::isalnum(c) && c != '-' && c != '.' && c != '_' && c != ':') {
                return std::string("a replica name holds letters, digits and - . _ : only");
              }
            }
            return std::string();
          },
          "NAME", "replica name"));
  serve
      ->add_option("--leader-lease-s", st->so.leader_lease_s,
                   "With --store: how often leadership is checked and tried; a dead leader is replaced within "
                   "about one lease")
      ->default_val(5)
      ->check(CLI::Range(0.1, 600.0));
  serve
      ->add_option("--log-inputs-sample-rate", st->so.log_inputs_sample_rate,
                   "Share (0 to 1) of endpoint predictions logged with their inputs")
      ->default_val(0)
      ->check(CLI::Range(0.0, 1.0));
  serve
      ->add_option("--benchmark-max-cpu", st->so.benchmark_max_cpu,
                   "Share of one core that benchmarks of competing models (replays of logged inputs) may take")
      ->default_val(0.25)
      ->check(CLI::Range(0.01, 1.0));
  serve
      ->add_option("--benchmark-rows", st->so.benchmark_rows,
                   "Logged requests with inputs one benchmark replays, at most")
      ->default_val(5000)
      ->check(CLI::Range(int64_t{1}, kMaxBenchmarkRows));
  serve
      ->add_option("--benchmark-min-interval-s", st->so.benchmark_min_interval_s,
                   "Least time between two benchmarks of one endpoint started by alerts")
      ->default_val(900)
      ->check(CLI::Range(int64_t{0}, int64_t{365} * 86400));
  serve->add_flag("--no-prediction-log", st->no_prediction_log,
                  "Do not log endpoint predictions (feedback then joins nothing)");
  serve
      ->add_option("--prediction-retention-days", st->so.prediction_retention_days,
                   "Logged predictions older than this are deleted; 0 = kept regardless of age")
      ->default_val(30)
      ->check(CLI::Range(0.0, 36500.0));
  serve
      ->add_option("--prediction-max-rows", st->so.prediction_max_rows,
                   "The oldest logged predictions past this many rows are deleted; 0 = no limit")
      ->default_val(10'000'000)
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--alert-webhook", st->so.alert_webhook,
                    "Post firing and resolved alerts here, Alertmanager webhook format (http(s)://host:port/path)");
  serve->add_option("--alertmanager-url", st->so.alertmanager_url,
                    "Alertmanager (http(s)://host:9093): alerts go to its API as Prometheus sends them, so its "
                    "routes, grouping, silences and receivers apply");
  serve
      ->add_option("--alertmanager-resend-s", st->so.alertmanager_resend_s,
                   "Firing alerts are sent to Alertmanager again this often, each valid for four times it")
      ->default_val(60)
      ->check(CLI::Range(0.1, 3600.0));
  serve
      ->add_option("--monitoring-retention-days", st->so.monitoring_retention_days,
                   "Stored drift windows older than this are deleted")
      ->default_val(30)
      ->check(CLI::Range(0.001, 36500.0));
  serve
      ->add_option("--health-window-s", st->so.health_window_s,
                   "Seconds per window in which latency p99, error rate, queue saturation and memory are judged")
      ->default_val(30)
      ->check(CLI::Range(0.05, 86400.0));
  serve
      ->add_option("--alert-memory-mb", st->memory_limit_mb,
                   "MemoryHigh fires when the server's resident memory is over this; 0 = 90% of the cgroup's "
                   "limit or the machine's memory")
      ->default_val(0)
      ->check(CLI::Range(0.0, 1e9));
  serve->add_option("--require-model", st->so.required_models,
                    "A model that must be READY for /v2/health/ready to answer ready (repeatable)");
  return {serve, [st, argc, argv] {
            if (auto s = st->tokens.Resolve(argc, argv, &st->so); !s.ok()) {
              std::fprintf(stderr, "vigil serve: %s\n", s.message().c_str());
              return 2;
            }
            st->so.log_predictions = !st->no_prediction_log;
            st->so.memory_limit_bytes = static_cast<uint64_t>(st->memory_limit_mb * 1024 * 1024);
            return Serve(st->so, st->log_level, st->tokens.on_command_line);
          }};
}

}  // namespace vigil::cli
