// The `vigil` executable: one binary, several subcommands.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "backends/backend.h"
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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (serve->parsed()) return Serve(so, log_level);
  if (backends->parsed()) {
    for (const auto& b : vigil::AvailableBackends()) std::printf("%s\n", b.c_str());
    return 0;
  }
  return 0;
}
