// vigil optimize: what the model's runtime offers to make it cheaper,
// measured against the original on its reference rows (tuning/optimize.h).
#include <unistd.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/logging.h"
#include "tuning/optimize.h"

namespace vigil::cli {
namespace {

struct OptimizeState {
  vigil::OptimizeOptions o;
  bool json = false;
  std::string write;  // "" none; "best"; or a candidate's name
};

int Optimize(OptimizeState& st) {
  (void)vigil::InitLogging("warn");
  std::FILE* progress = isatty(STDERR_FILENO) ? stderr : nullptr;
  auto report = vigil::RunOptimize(st.o, progress);
  if (!report.ok()) return Fail("optimize", report.status().message());
  std::string written;
  if (st.write == "all") {
    // Every other candidate that ran, each as a version of its own, for
    // serving them side by side (a rollout, vigil rollout benchmark).
    for (size_t i = 1; i < report->candidates.size(); ++i) {
      const auto& c = report->candidates[i];
      if (!c.error.empty()) continue;
      auto v = vigil::WriteCandidate(st.o.repository, *report, c);
      if (!v.ok()) return Fail("optimize", v.status().message());
      written += "wrote '" + c.name + "' as " + report->model + " version " + std::to_string(*v) + "\n";
    }
  } else if (!st.write.empty()) {
    const vigil::OptimizeCandidate* chosen = nullptr;
    if (st.write == "best") {
      if (!report->recommended) return Fail("optimize", "--write best: nothing to write, " + report->note);
      chosen = &report->candidates[*report->recommended];
    } else {
      for (const auto& c : report->candidates) {
        if (c.name == st.write) chosen = &c;
      }
      if (!chosen) {
        std::string names;
        for (const auto& c : report->candidates) names += (names.empty() ? "" : "', '") + c.name;
        return Fail("optimize", "--write '" + st.write + "': no such candidate (candidates: '" + names + "')");
      }
    }
    auto v = vigil::WriteCandidate(st.o.repository, *report, *chosen);
    if (!v.ok()) return Fail("optimize", v.status().message());
    written = "wrote '" + chosen->name + "' as " + report->model + " version " + std::to_string(*v) +
              " (the server's next poll loads it where the version policy selects it)\n";
  }
  if (st.json) {
    std::printf("%s\n", vigil::OptimizeJson(*report).c_str());
    if (!written.empty()) std::fprintf(stderr, "%s", written.c_str());
  } else {
    std::printf("%s%s", vigil::FormatOptimizeTable(*report).c_str(), written.c_str());
  }
  return 0;
}

}  // namespace

Command AddOptimize(CLI::App& parent) {
  auto st = std::make_shared<OptimizeState>();
  CLI::App* cmd = parent.add_subcommand(
      "optimize",
      "Make a model cheaper: tries what its runtime offers (TorchScript freeze / optimize_for_inference and\n"
      "threads; OpenCV DNN backends, targets and fusion; XGBoost threads, DMatrix and tree cuts), each\n"
      "measured against the original on its reference.csv: latency at batch 1, throughput at the best batch,\n"
      "output differences, class agreement and accuracy. Nothing is written unless --write is given;\n"
      "then the candidate becomes the model's next version (a copy with its backend_options.yaml).");
  cmd->add_option("model", st->o.model, "Model to optimize")->required();
  cmd->add_option("--model-repository", st->o.repository, "The repository holding it")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--version", st->o.version, "Version to start from (default: the highest on disk)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-abs-diff", st->o.max_abs_diff, "Largest output difference a candidate may have to be exact")
      ->default_val(1e-4)
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seconds", st->o.seconds, "Measuring time per candidate")
      ->default_val(1.5)
      ->check(CLI::Range(0.05, 600.0));
  cmd->add_option("--rows", st->o.max_rows, "Reference rows compared at most")
      ->default_val(2000)
      ->check(CLI::Range(int64_t{1}, int64_t{10'000'000}));
  cmd->add_option("--write", st->write,
                  "Write a candidate as the next version: 'best' (the recommended one), a candidate's name, or\n"
                  "'all' (every candidate that ran, each as a version of its own)");
  cmd->add_flag("--json", st->json, "One JSON document on stdout instead of the table");
  return {cmd, [st] { return Optimize(*st); }};
}

}  // namespace vigil::cli
