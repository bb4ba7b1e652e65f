// vigil distill: a smaller student trained on a teacher's answers
// (tuning/distill.h), optionally made an endpoint's overload fallback.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "core/logging.h"
#include "routing/deployment_spec.h"
#include "tuning/distill.h"

namespace vigil::cli {
namespace {

struct DistillState {
  vigil::DistillOptions o;
  std::string student = "xgboost";
  std::string for_endpoint;
  double since_hours = 0;
  bool json = false;
  bool dry_run = false;
};

// REPO/deployments/E.yaml with `overload.fallback` set to `model` (an
// overload block with its defaults when the spec has none).
vigil::Status SetFallback(const std::filesystem::path& repository, const std::string& endpoint,
                          const std::string& model) {
  const auto path = repository / "deployments" / (endpoint + ".yaml");
  std::ifstream in(path);
  if (!in)
    return vigil::NotFound("endpoint '" + endpoint + "' has no spec file " + path.string() +
                           " (an endpoint applied through the API: set overload.fallback with vigil deploy)");
  std::ostringstream text;
  text << in.rdbuf();
  VIGIL_ASSIGN_OR_RETURN(vigil::DeploymentSpec spec, vigil::ParseDeploymentSpec(endpoint, text.str()));
  if (!spec.overload) spec.overload = vigil::OverloadPolicy{};
  vigil::Variant fallback;
  fallback.model = model;
  spec.overload->fallback = fallback;
  const std::string yaml = vigil::DeploymentSpecToYaml(spec);
  const auto staging = path.string() + ".writing";
  {
    std::ofstream out(staging, std::ios::trunc);
    out << "# overload.fallback set by vigil distill\n" << yaml;
    if (!out.good()) return vigil::Internal("cannot write " + staging);
  }
  std::error_code ec;
  std::filesystem::rename(staging, path, ec);
  if (ec) return vigil::Internal("cannot replace " + path.string() + ": " + ec.message());
  return vigil::Status::Ok();
}

int Distill(DistillState& st) {
  (void)vigil::InitLogging("warn");
  st.o.student = st.student == "mlp" ? vigil::StudentKind::kMlp : vigil::StudentKind::kXgboost;
  st.o.write = !st.dry_run;
  if (st.since_hours > 0) {
    const auto now =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    st.o.since_ms = now - static_cast<int64_t>(st.since_hours * 3'600'000);
  }
  if (!st.for_endpoint.empty() && st.dry_run)
    return Fail("distill", "--for-endpoint writes; it cannot go with --dry-run");
  std::FILE* progress = isatty(STDERR_FILENO) ? stderr : nullptr;
  auto report = vigil::RunDistill(st.o, progress);
  if (!report.ok()) return Fail("distill", report.status().message());
  std::string note;
  if (!st.for_endpoint.empty()) {
    if (auto s = SetFallback(st.o.repository, st.for_endpoint, report->written); !s.ok())
      return Fail("distill", "the student '" + report->written + "' was written, but: " + s.message());
    note = "endpoint '" + st.for_endpoint + "': overload.fallback is now '" + report->written + "'\n";
  }
  if (st.json) {
    std::printf("%s\n", vigil::DistillJson(*report).c_str());
    if (!note.empty()) std::fprintf(stderr, "%s", note.c_str());
  } else {
    std::printf("%s%s", vigil::FormatDistillTable(*report).c_str(), note.c_str());
  }
  return 0;
}

}  // namespace

Command AddDistill(CLI::App& parent) {
  auto st = std::make_shared<DistillState>();
  CLI::App* cmd = parent.add_subcommand(
      "distill",
      "Train a smaller student on a teacher model's own answers (soft labels) over its reference.csv and the\n"
      "inputs the prediction log sampled (--data-dir, --endpoint), hold a share out, and write the smallest\n"
      "student within half a point of the best held-out agreement as a new model (config, version 1,\n"
      "reference.csv). Reports agreement, accuracy, latency, throughput and size against the teacher.");
  cmd->add_option("teacher", st->o.teacher, "The model to distil")->required();
  cmd->add_option("--model-repository", st->o.repository, "The repository holding it (the student is written there)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--version", st->o.version, "The teacher's version (default: the highest on disk)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--student", st->student, "xgboost (trees, through XGBoost's C API) or mlp (libtorch)")
      ->check(CLI::IsMember({"xgboost", "mlp"}))
      ->default_val("xgboost");
  cmd->add_option("-o,--output", st->o.output, "The student's model name (default TEACHER_distilled_xgb or _mlp)");
  cmd->add_option("--trees", st->o.trees, "XGBoost: boosting rounds to try")
      ->delimiter(',')
      ->default_str("10,50")
      ->check(CLI::Range(int64_t{1}, int64_t{10'000}));
  cmd->add_option("--depth", st->o.depths, "XGBoost: tree depths to try")
      ->delimiter(',')
      ->default_str("2,4")
      ->check(CLI::Range(int64_t{1}, int64_t{16}));
  cmd->add_option("--hidden", st->o.hidden, "MLP: hidden units to try")
      ->delimiter(',')
      ->default_str("4,16,64")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  cmd->add_option("--holdout", st->o.holdout, "Share of the rows held out for scoring")
      ->default_val(0.2)
      ->check(CLI::Range(0.01, 0.9));
  cmd->add_option("--seed", st->o.seed, "Seed of the split and the training")->default_val(1);
  auto* data_dir = cmd->add_option("--data-dir", st->o.data_dir,
                                   "A server's --data-dir: learn from the inputs its prediction log sampled")
                       ->check(CLI::ExistingDirectory);
  cmd->add_option("--store", st->o.data_dir, "A server's --store (postgres://...): the same, from the shared store")
      ->check(CheckStoreUrl)
      ->excludes(data_dir);
  cmd->add_option("--endpoint", st->o.endpoint, "With --data-dir or --store: the endpoint whose logged traffic to use");
  cmd->add_option("--since-hours", st->since_hours,
                  "With --data-dir or --store: only inputs logged in the last N hours")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--rows", st->o.max_rows, "At most this many rows from reference.csv, and from the log")
      ->default_val(100'000)
      ->check(CLI::Range(int64_t{10}, int64_t{10'000'000}));
  cmd->add_option("--seconds", st->o.seconds, "Measuring time per model")
      ->default_val(1)
      ->check(CLI::Range(0.05, 600.0));
  cmd->add_option("--for-endpoint", st->for_endpoint,
                  "Make the student this endpoint's overload fallback (its REPO/deployments/E.yaml)");
  cmd->add_flag("--dry-run", st->dry_run, "Train and report, write nothing");
  cmd->add_flag("--json", st->json, "One JSON document on stdout instead of the table");
  return {cmd, [st] { return Distill(*st); }};
}

}  // namespace vigil::cli
