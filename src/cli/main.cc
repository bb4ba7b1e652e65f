// The `vigil` executable: one binary, several subcommands.
#include <CLI/CLI.hpp>

#include <cstdio>

#include <unistd.h>

#include "backends/backend.h"
#include "client/bench.h"
#include "core/logging.h"
#include "server/server.h"

namespace {

int Serve(const vigil::ServerOptions& options, const std::string& log_level) {
  if (auto s = vigil::InitLogging(log_level); !s.ok()) {
    std::fprintf(stderr, "vigil serve: %s\n", s.message().c_str());
    return 2;
  }
  const vigil::Status s = vigil::RunServer(options);
  if (!s.ok()) {
    spdlog::error("event=server_failed error={}", vigil::LogValue(s.message()));
    std::fprintf(stderr, "vigil serve: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

// One line on stderr, exit code 1: what went wrong and what to fix.
int Fail(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "vigil %s: %s\n", command.c_str(), message.c_str());
  return 1;
}

struct TargetFlags {
  std::string url = "localhost:8000";
  std::string protocol = "http";
  bool binary = false;
  double timeout_s = 30;

  void Add(CLI::App* app) {
    app->add_option("-u,--url", url, "Server address: host:port, http://host:port or grpc://host:port")
        ->default_val("localhost:8000");
    app->add_option("--protocol", protocol, "http or grpc (a grpc:// URL implies grpc)")
        ->check(CLI::IsMember({"http", "grpc"}))
        ->default_val("http");
    app->add_flag("--binary", binary, "HTTP: binary tensor extension instead of JSON; gRPC: raw_input_contents");
    app->add_option("--timeout", timeout_s, "Seconds before one request counts as failed")
        ->default_val(30)
        ->check(CLI::PositiveNumber);
  }

  vigil::Status Resolve(vigil::ClientOptions* o) const {
    o->protocol = protocol == "grpc" ? vigil::Protocol::kGrpc : vigil::Protocol::kHttp;
    VIGIL_RETURN_IF_ERROR(vigil::ParseServerUrl(url, o));
    o->binary = binary;
    o->timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    return vigil::Status::Ok();
  }
};

int Bench(vigil::BenchOptions o, const TargetFlags& target, bool json, double stability_pct) {
  if (auto s = target.Resolve(&o.client); !s.ok()) return Fail("bench", s.message());
  o.timeout_s = target.timeout_s;
  o.stability = stability_pct / 100.0;
  std::FILE* progress = isatty(STDERR_FILENO) ? stderr : nullptr;
  auto report = vigil::RunBench(o, progress);
  if (!report.ok()) return Fail("bench", report.status().message());
  if (json) {
    std::printf("%s\n", vigil::BenchJson(*report).c_str());
  } else {
    std::printf("%s", vigil::FormatBenchTable(*report).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Vigil: serve, deploy and monitor ML models.\n"
      "Speaks the Open Inference Protocol (KServe v2) over HTTP."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("vigil ") + VIGIL_VERSION);

  vigil::ServerOptions so;
  std::string log_level = "info";
  CLI::App* serve = app.add_subcommand("serve", "Serve the models of a model repository over HTTP.");
  serve
      ->add_option("--model-repository", so.model_repository,
                   "Folder holding <model>/config.yaml and <model>/<version>/model.<ext>")
      ->required()
      ->check(CLI::ExistingDirectory);
  serve->add_option("--http-port", so.http_port, "HTTP port; 0 picks a free port (the log says which)")
      ->default_val(8000);
  serve->add_option("--grpc-port", so.grpc_port,
                    "gRPC port (inference.GRPCInferenceService); 0 picks a free port; -1 (default) = no gRPC")
      ->default_val(-1)
      ->check(CLI::Range(-1, 65535));
  serve->add_option("--host", so.host, "Address to listen on")->default_val("0.0.0.0");
  serve
      ->add_option("--poll-interval", so.poll_interval_s,
                   "Seconds between re-scans of the repository for new, changed or removed versions; 0 = load once")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->default_val("info");
  serve
      ->add_option("--shutdown-timeout", so.shutdown_timeout_s,
                   "Seconds to let in-flight requests finish after SIGTERM/SIGINT")
      ->default_val(30)
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--http-threads", so.http_threads, "HTTP I/O threads; 0 = one per core")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--max-body-bytes", so.max_body_bytes, "Largest request body accepted; larger gets 413")
      ->default_val(64 << 20)
      ->check(CLI::PositiveNumber);
  serve->add_option("--require-model", so.required_models,
                    "A model that must be READY for /v2/health/ready to answer ready (repeatable)");

  CLI::App* backends = app.add_subcommand("backends", "List the backends compiled into this binary.");

  vigil::BenchOptions bo;
  TargetFlags bench_target;
  bool bench_json = false;
  double stability_pct = 10;
  CLI::App* bench = app.add_subcommand(
      "bench",
      "Load-test a model (perf_analyzer's job): closed-loop concurrency or open-loop rate levels, measured in\n"
      "windows until they agree; throughput, latency percentiles, errors and the server's queue/compute split.");
  bench_target.Add(bench);
  bench->add_option("-m,--model", bo.model, "Model (or endpoint) to call")->required();
  bench->add_option("--model-version", bo.version, "Version to call; default the server's choice");
  auto* conc = bench->add_option("--concurrency", bo.concurrency, "Closed loop: requests kept in flight, e.g. 1,8,32")
                   ->delimiter(',');
  bench->add_option("--rate", bo.rates, "Open loop: requests per second, e.g. 1000,5000")
      ->delimiter(',')
      ->excludes(conc);
  bench->add_flag("--poisson", bo.poisson, "Open loop with exponential gaps (Poisson arrivals) instead of fixed ones");
  bench->add_option("--batch", bo.batch, "Rows per request")->default_val(1)->check(CLI::PositiveNumber);
  bench->add_option("--input-data", bo.input_data,
                    "CSV (a row per line, header optional) or JSON ({\"data\": [{\"<input>\": [...]}]}); default "
                    "random data");
  bench->add_option("--duration", bo.duration_s, "Longest measurement per level, seconds")->default_val(30);
  bench->add_option("--window", bo.window_s, "Measurement window, seconds")->default_val(2);
  bench->add_option("--stability", stability_pct, "Windows agree when throughput and mean latency are within this %")
      ->default_val(10)
      ->check(CLI::Range(0.1, 100.0));
  bench->add_option("--stable-windows", bo.stable_windows, "Consecutive windows that must agree")
      ->default_val(3)
      ->check(CLI::Range(1, 100));
  bench->add_option("--metrics-url", bo.metrics_url,
                    "Where the server's /metrics are; default the HTTP URL (or port 8000 for gRPC)");
  bench->add_option("--threads", bo.threads, "Client threads; 0 = one per core, at most 4")->default_val(0);
  bench->add_option("--max-connections", bo.max_connections, "Open loop over HTTP: most connections opened")
      ->default_val(1024)
      ->check(CLI::PositiveNumber);
  bench->add_flag("--json", bench_json, "One JSON document on stdout instead of the table");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "vigil: %s (see vigil --help)\n", e.what());
    return 2;
  }
  if (serve->parsed()) return Serve(so, log_level);
  if (bench->parsed()) {
    if (bo.concurrency.empty() && bo.rates.empty()) bo.concurrency = {1};
    return Bench(bo, bench_target, bench_json, stability_pct);
  }
  if (backends->parsed()) {
    for (const auto& b : vigil::AvailableBackends()) std::printf("%s\n", b.c_str());
    return 0;
  }
  return 0;
}
