// The cost of writing an inference reply as JSON (EncodeInferReply, on the
// serving path of every REST answer): the breast-cancer answer (one row of
// two probabilities, with the vigil.* parameters an endpoint adds), a
// 64-row batch of it, and one row of 1,000 floats. Per reply.
//
//   build/encode_reply [--benchmark_min_time=2]
#include <benchmark/benchmark.h>

#include <random>

#include "protocol/oip_json.h"

namespace {

vigil::InferReply Reply(int64_t rows, int64_t width, bool endpoint) {
  vigil::InferReply r;
  r.model = "breast_cancer_mlp";
  r.version = 2;
  r.id = "0190f3a2-7c1d-7b3e-9a5f-2d4c6e8f0a1b";
  if (endpoint) {
    r.parameters["vigil.variant"] = std::string("production");
    r.parameters["vigil.prediction_id"] = std::string("0190f3a2-7c1d-7b3e-9a5f-2d4c6e8f0a1c");
  }
  vigil::Tensor t;
  t.name = "probabilities";
  t.datatype = vigil::DataType::kFp32;
  t.shape = {rows, width};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<float> v(static_cast<size_t>(rows * width));
  for (float& x : v) x = u(rng);
  t.data.assign(reinterpret_cast<const uint8_t*>(v.data()), reinterpret_cast<const uint8_t*>(v.data() + v.size()));
  r.outputs.push_back(std::move(t));
  r.binary = {false};
  return r;
}

void BM_EncodeReply(benchmark::State& state) {
  const vigil::InferReply reply = Reply(state.range(0), state.range(1), state.range(2) != 0);
  size_t bytes = 0;
  for (auto _ : state) {
    vigil::EncodedBody body = vigil::EncodeInferReply(reply);
    bytes = body.body.size();
    benchmark::DoNotOptimize(body);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_EncodeReply)
    ->ArgNames({"rows", "width", "endpoint"})
    ->Args({1, 2, 0})
    ->Args({1, 2, 1})
    ->Args({64, 2, 0})
    ->Args({1, 1000, 0});

}  // namespace

BENCHMARK_MAIN();
