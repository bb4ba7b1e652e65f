// The hot-path cost of drift monitoring: DriftMonitor::Observe on the
// breast-cancer shape (30 input features, probabilities [p, 1 - p]: 2
// output columns plus their argmax), reference from the example
// reference.csv, rows drawn from it. Per row, for 1-row and 64-row batches.
//
//   build/monitor_observe [--benchmark_min_time=2]
#include <benchmark/benchmark.h>

#include <fstream>
#include <random>
#include <sstream>

#include "monitoring/drift_monitor.h"

namespace {

using vigil::DataType;
using vigil::Tensor;

vigil::ReferenceRows LoadReference() {
  std::ifstream in(VIGIL_SOURCE_DIR "/examples/repository/breast_cancer_mlp/reference.csv");
  std::stringstream text;
  text << in.rdbuf();
  auto rows = vigil::ReadReferenceCsv(text.str(), 30);
  if (!rows.ok()) std::abort();
  for (int64_t r = 0; r < rows->rows; ++r) {  // outputs of a stand-in classifier
    const double p = 1 / (1 + std::exp(rows->inputs[static_cast<size_t>(r * 30)] - 14));
    rows->outputs.push_back(p);
    rows->outputs.push_back(1 - p);
  }
  return *std::move(rows);
}

Tensor Fp32(int64_t rows, int64_t width) {
  Tensor t;
  t.datatype = DataType::kFp32;
  t.shape = {rows, width};
  t.data.resize(static_cast<size_t>(rows * width) * sizeof(float));
  return t;
}

void BM_Observe(benchmark::State& state) {
  static const vigil::ReferenceRows reference = LoadReference();
  vigil::MonitoringConfig config;
  config.window_rows = 1'000'000'000;  // never closes: the hot path only
  vigil::DriftMonitor monitor(config, 30, 2, "probabilities");
  monitor.SetReference(reference, "reference.csv");
  const int64_t rows = state.range(0);
  // 64 batches of real rows to cycle through.
  std::mt19937 rng(1);
  std::uniform_int_distribution<int64_t> pick(0, reference.rows - 1);
  std::vector<Tensor> inputs, outputs;
  for (int b = 0; b < 64; ++b) {
    Tensor in = Fp32(rows, 30), out = Fp32(rows, 2);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t src = pick(rng);
      for (int64_t c = 0; c < 30; ++c) {
        in.mutable_as<float>()[r * 30 + c] = static_cast<float>(reference.inputs[static_cast<size_t>(src * 30 + c)]);
      }
      for (int64_t c = 0; c < 2; ++c) {
        out.mutable_as<float>()[r * 2 + c] = static_cast<float>(reference.outputs[static_cast<size_t>(src * 2 + c)]);
      }
    }
    inputs.push_back(std::move(in));
    outputs.push_back(std::move(out));
  }
  size_t i = 0;
  for (auto _ : state) {
    monitor.Observe(inputs[i], outputs[i], rows);
    i = (i + 1) % inputs.size();
  }
  state.SetItemsProcessed(state.iterations() * rows);
  state.counters["ns_per_row"] = benchmark::Counter(static_cast<double>(state.iterations() * rows),
                                                    benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Observe)->Arg(1)->Arg(64);

}  // namespace

BENCHMARK_MAIN();
