// vigil profile: find the serving config with the most throughput under a
// p99 budget (Model Analyzer's job).
#include <unistd.h>

#include <cstdio>

#include "cli/commands.h"
#include "client/profile.h"
#include "core/logging.h"
#include "server/server.h"

namespace vigil::cli {
namespace {

struct ProfileFlags {
  std::string model_repository;
  std::string http_url;
  std::string output;
  bool json = false;
  bool no_refine = false;
};

int Profile(vigil::ProfileOptions o, const TargetFlags& target, const ProfileFlags& flags) {
  if (auto s = target.Resolve(&o.client); !s.ok()) return Fail("profile", s.message());
  std::unique_ptr<vigil::Server> server;
  if (!flags.model_repository.empty()) {
    // In-process: a server of our own on free loopback ports.
    (void)vigil::InitLogging("warn");
    vigil::ServerOptions so;
    so.model_repository = flags.model_repository;
    so.host = "127.0.0.1";
    so.http_port = 0;
    so.grpc_port = o.client.protocol == vigil::Protocol::kGrpc ? 0 : -1;
    so.shutdown_timeout_s = 5;
    so.data_dir = "";  // the profiled server keeps nothing
    auto started = vigil::Server::Start(so);
    if (!started.ok()) return Fail("profile", started.status().message());
    server = std::move(started).value();
    o.client.host = "127.0.0.1";
    o.client.port =
        o.client.protocol == vigil::Protocol::kGrpc ? static_cast<uint16_t>(server->grpc_port()) : server->http_port();
    o.control = o.client;
    o.control.port = server->http_port();
  } else {
    o.control = o.client;
    if (!flags.http_url.empty()) {
      if (auto s = vigil::ParseServerUrl(flags.http_url, &o.control); !s.ok()) return Fail("profile", s.message());
    } else if (o.client.protocol == vigil::Protocol::kGrpc) {
      o.control.port = 8000;
    }
  }
  o.control.protocol = vigil::Protocol::kHttp;
  o.control.binary = false;
  o.refine = !flags.no_refine;
  std::FILE* progress = isatty(STDERR_FILENO) ? stderr : nullptr;
  auto report = vigil::RunProfile(o, progress);
  if (server) server->Shutdown("profile finished");
  if (!report.ok()) return Fail("profile", report.status().message());
  const std::string yaml = vigil::RecommendedConfigYaml(*report);
  if (!flags.output.empty() && !yaml.empty()) {
    std::FILE* f = std::fopen(flags.output.c_str(), "w");
    if (!f) return Fail("profile", "cannot write --output " + flags.output);
    std::fputs(yaml.c_str(), f);
    std::fclose(f);
  }
  if (flags.json) {
    std::printf("%s\n", vigil::ProfileJson(*report).c_str());
  } else {
    std::printf("%s", vigil::FormatProfileTable(*report).c_str());
    if (!yaml.empty())
      std::printf("\nrecommended config.yaml%s:\n%s",
                  flags.output.empty() ? "" : (" (written to " + flags.output + ")").c_str(), yaml.c_str());
  }
  return report->best ? 0 : 3;
}

struct ProfileState {
  vigil::ProfileOptions po;
  TargetFlags profile_target;
  ProfileFlags pf;
};

}  // namespace

Command AddProfile(CLI::App& parent) {
  auto st = std::make_shared<ProfileState>();
  CLI::App* profile = parent.add_subcommand(
      "profile",
      "Find the serving config with the most throughput under a p99 budget (Model Analyzer's job): sweeps\n"
      "max_batch_size, max_queue_delay_us and instances on a server started in-process (--model-repository)\n"
      "or running at --url, then prints every config tried and the best as a config.yaml snippet.");
  st->profile_target.Add(profile);
  auto* repo_opt = profile
                       ->add_option("--model-repository", st->pf.model_repository,
                                    "Start a server in-process on this repository (instead of --url)")
                       ->check(CLI::ExistingDirectory);
  profile->add_option("--http-url", st->pf.http_url,
                      "HTTP address for config loads and /metrics when --url is gRPC; default port 8000");
  profile->add_option("-m,--model", st->po.model, "Model to profile")->required();
  profile->add_option("--latency-budget", st->po.latency_budget_ms, "p99 latency budget, milliseconds")
      ->default_val(10)
      ->check(CLI::PositiveNumber);
  profile->add_option("--time-budget", st->po.time_budget_s, "Seconds the whole search may take")
      ->default_val(120)
      ->check(CLI::PositiveNumber);
  profile->add_option("--max-batch-sizes", st->po.max_batch_sizes, "Coarse grid of max_batch_size")
      ->delimiter(',')
      ->default_str("16,64");
  profile->add_option("--delays-us", st->po.delays_us, "Coarse grid of max_queue_delay_us")
      ->delimiter(',')
      ->default_str("0,1000");
  profile->add_option("--instances", st->po.instances, "Coarse grid of instance counts")
      ->delimiter(',')
      ->default_str("1,2");
  profile->add_option("--max-concurrency", st->po.max_concurrency, "Highest closed-loop concurrency tried")
      ->default_val(256)
      ->check(CLI::PositiveNumber);
  profile->add_flag("--no-refine", st->pf.no_refine, "Only the coarse grid, no refinement around the best");
  profile->add_option("--batch", st->po.batch, "Rows per request")->default_val(1)->check(CLI::PositiveNumber);
  profile->add_option("--input-data", st->po.input_data, "CSV or JSON request data, as for vigil bench");
  profile->add_option("--window", st->po.window_s, "Measurement window, seconds")
      ->default_val(0.3)
      ->check(CLI::PositiveNumber);
  profile->add_option("-o,--output", st->pf.output, "Write the recommended config.yaml snippet to this file");
  profile->add_flag("--json", st->pf.json, "One JSON document on stdout instead of the table");
  (void)repo_opt;
  return {profile, [st] {
            st->po.level_limit_s = st->po.window_s * 6;
            return Profile(st->po, st->profile_target, st->pf);
          }};
}

}  // namespace vigil::cli
