// In-process backend throughput: the compute limit a server is measured
// against. Loads one model version straight through the Backend interface
// (no scheduler, no HTTP) and runs batches of zeros-with-noise back to back.
//
//   backend_throughput REPO MODEL VERSION BATCH SECONDS
// prints: model=... batch=... batches_per_s=... rows_per_s=... mean_us=...
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "backends/backend.h"
#include "repository/model_config.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: backend_throughput REPO MODEL VERSION BATCH SECONDS\n");
    return 2;
  }
  const std::string repo = argv[1], model = argv[2], version = argv[3];
  const int64_t batch = std::atoll(argv[4]);
  const double seconds = std::atof(argv[5]);
  std::ifstream in(repo + "/" + model + "/config.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  auto config = vigil::LoadModelConfig(model, ss.str());
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().message().c_str());
    return 1;
  }
  vigil::BackendSpec spec;
  spec.model_name = model;
  spec.version = std::atoll(version.c_str());
  for (const auto& name : vigil::BackendModelFileNames(config->backend)) {
    const std::string p = repo + "/" + model + "/" + version + "/" + name;
    if (std::ifstream(p).good()) spec.model_path = p;
  }
  spec.max_batch_size = config->max_batch_size;
  spec.inputs = config->inputs;
  spec.outputs = config->outputs;
  auto backend = vigil::CreateBackend(vigil::BackendKindName(config->backend), spec);
  if (!backend.ok()) {
    std::fprintf(stderr, "%s\n", backend.status().message().c_str());
    return 1;
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> noise(10.0f, 5.0f);
  std::vector<vigil::Tensor> inputs;
  for (const auto& s : config->inputs) {
    vigil::Tensor t;
    t.name = s.name;
    t.datatype = s.datatype;
    t.shape = {batch};
    t.shape.insert(t.shape.end(), s.dims.begin(), s.dims.end());
    t.data.resize(t.expected_byte_size());
    auto* f = t.mutable_as<float>();
    for (int64_t i = 0; i < t.element_count(); ++i) f[i] = noise(rng);
    inputs.push_back(std::move(t));
  }
  std::vector<vigil::Tensor> outputs;
  for (int i = 0; i < 50; ++i) (void)(*backend)->Execute(inputs, outputs);
  const auto start = std::chrono::steady_clock::now();
  int64_t batches = 0;
  double elapsed = 0;
  do {
    for (int i = 0; i < 100; ++i) {
      if (auto s = (*backend)->Execute(inputs, outputs); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.message().c_str());
        return 1;
      }
    }
    batches += 100;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  std::printf("model=%s batch=%lld batches_per_s=%.0f rows_per_s=%.0f mean_us=%.2f\n", model.c_str(),
              static_cast<long long>(batch), batches / elapsed, batches * batch / elapsed, elapsed / batches * 1e6);
  return 0;
}
