// vigil bench: load-test a model or endpoint (perf_analyzer's job).
#include <unistd.h>

#include <cstdio>

#include "cli/commands.h"
#include "client/bench.h"
#include "client/rate_schedule.h"

namespace vigil::cli {
namespace {

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
  // As perf_analyzer does: figures that did not settle are not a success.
  for (const auto& level : report->levels) {
    if (!level.stable) {
      std::fprintf(stderr, "vigil bench: %s did not stabilise; its figures are printed but not to be trusted\n",
                   level.level.Describe().c_str());
      return 3;
    }
  }
  return 0;
}

int Schedule(vigil::BenchOptions o, const TargetFlags& target, bool json, double stability_pct,
             const std::string& schedule_text, vigil::ScheduleOptions so) {
  if (auto s = target.Resolve(&o.client); !s.ok()) return Fail("bench", s.message());
  o.timeout_s = target.timeout_s;
  o.stability = stability_pct / 100.0;
  auto phases = vigil::ParseRateSchedule(schedule_text);
  if (!phases.ok()) return Fail("bench", phases.status().message());
  so.phases = std::move(phases).value();
  for (const auto& p : so.phases) {
    if (p.multiple > 0 && so.capacity <= 0 && !o.concurrency.empty()) so.capacity_concurrency = o.concurrency[0];
  }
  std::FILE* progress = isatty(STDERR_FILENO) ? stderr : nullptr;
  auto report = vigil::RunRateSchedule(o, so, progress);
  if (!report.ok()) return Fail("bench", report.status().message());
  std::printf("%s", json ? (vigil::ScheduleJson(*report) + "\n").c_str() : vigil::FormatScheduleTable(*report).c_str());
  return 0;
}

struct BenchState {
  vigil::BenchOptions bo;
  TargetFlags bench_target;
  bool bench_json = false;
  double stability_pct = 10;
  std::string rate_schedule;
  vigil::ScheduleOptions so;
};

}  // namespace

Command AddBench(CLI::App& parent) {
  auto st = std::make_shared<BenchState>();
  CLI::App* bench = parent.add_subcommand(
      "bench",
      "Load-test a model (perf_analyzer's job): closed-loop concurrency or open-loop rate levels, measured in\n"
      "windows until they agree; throughput, latency percentiles, errors and the server's queue/compute split.");
  st->bench_target.Add(bench);
  bench->add_option("-m,--model", st->bo.model, "Model (or endpoint) to call")->required();
  bench->add_option("--model-version", st->bo.version, "Version to call; default the server's choice");
  auto* conc = bench
                   ->add_option("--concurrency", st->bo.concurrency,
                                "Closed loop: requests kept in flight, e.g. 1,8,32 (default 1)")
                   ->delimiter(',');
  bench->add_option("--rate", st->bo.rates, "Open loop: requests per second, e.g. 1000,5000")
      ->delimiter(',')
      ->excludes(conc);
  bench->add_flag("--poisson", st->bo.poisson,
                  "Open loop with exponential gaps (Poisson arrivals) instead of fixed ones");
  bench->add_option("--batch", st->bo.batch, "Rows per request")->default_val(1)->check(CLI::PositiveNumber);
  bench->add_option("--input-data", st->bo.input_data,
                    "CSV (a row per line, header optional) or JSON ({\"data\": [{\"<input>\": [...]}]}); default "
                    "random data");
  bench->add_option("--duration", st->bo.duration_s, "Longest measurement per level, seconds")->default_val(30);
  bench->add_option("--window", st->bo.window_s, "Measurement window, seconds")->default_val(2);
  bench
      ->add_option("--stability", st->stability_pct, "Windows agree when throughput and mean latency are within this %")
      ->default_val(10)
      ->check(CLI::Range(0.1, 100.0));
  bench->add_option("--stable-windows", st->bo.stable_windows, "Consecutive windows that must agree")
      ->default_val(3)
      ->check(CLI::Range(1, 100));
  bench->add_option("--metrics-url", st->bo.metrics_url,
                    "Where the server's /metrics are; default the HTTP URL (or port 8000 for gRPC)");
  bench->add_option("--threads", st->bo.threads, "Client threads; 0 = one per core, at most 4")->default_val(0);
  bench->add_option("--max-connections", st->bo.max_connections, "Open loop over HTTP: most connections opened")
      ->default_val(1024)
      ->check(CLI::PositiveNumber);
  bench->add_flag("--json", st->bench_json, "One JSON document on stdout instead of the table");
  auto* schedule =
      bench
          ->add_option(
              "--rate-schedule", st->rate_schedule,
              "Open loop through phases, e.g. 1x:10s,5x:20s,1x:10s (multiples of --capacity, measured first "
              "in closed loop at the first --concurrency, 8 by default) or 300:10s (req/s): goodput, share in "
              "time, shed, p99 of the admitted, share and accuracy per overload rung, memory, time back to rung 0")
          ->excludes("--rate");
  bench
      ->add_option("--capacity", st->so.capacity, "With --rate-schedule: requests per second at 1x (default: measured)")
      ->check(CLI::PositiveNumber)
      ->needs(schedule);
  bench
      ->add_option("--deadline-ms", st->so.deadline_ms,
                   "With --rate-schedule: an answer later than this is not in time")
      ->default_val(100)
      ->check(CLI::Range(0.001, 3.6e6))
      ->needs(schedule);
  bench
      ->add_option("--request-timeout-ms", st->so.request_timeout_ms,
                   "With --rate-schedule: send this as every request's `timeout` parameter (its own deadline)")
      ->check(CLI::Range(0.001, 3.6e6))
      ->needs(schedule);
  bench
      ->add_option("--labels-column", st->so.labels_column,
                   "With --rate-schedule and a CSV --input-data: the column of each row's class label (accuracy of "
                   "the answers in time, per rung)")
      ->needs(schedule);
  return {bench, [st] {
            if (!st->rate_schedule.empty())
              return Schedule(st->bo, st->bench_target, st->bench_json, st->stability_pct, st->rate_schedule, st->so);
            if (st->bo.concurrency.empty() && st->bo.rates.empty()) st->bo.concurrency = {1};
            return Bench(st->bo, st->bench_target, st->bench_json, st->stability_pct);
          }};
}

}  // namespace vigil::cli
