#include "tuning/measure.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace vigil {
namespace {

using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(std::min<double>(static_cast<double>(v.size()) - 1, q * static_cast<double>(v.size())))];
}

}  // namespace

StatusOr<Outputs> RunRows(Backend& backend, const ModelConfig& config, const ReferenceData& data, int64_t batch) {
  if (config.max_batch_size == 0) batch = 1;
  Outputs out(config.outputs.size());
  for (int64_t first = 0; first < data.rows; first += batch) {
    const int64_t n = std::min(batch, data.rows - first);
    std::vector<Tensor> inputs = {RowsTensor(config, data, first, n)};
    std::vector<Tensor> results;
    VIGIL_RETURN_IF_ERROR(backend.Execute(inputs, results));
    if (results.size() != out.size())
      return Internal(fmt::format("{} outputs for the config's {}", results.size(), out.size()));
    for (size_t o = 0; o < results.size(); ++o) {
      if (results[o].datatype != DataType::kFp32) return Internal("output '" + results[o].name + "' is not FP32");
      const float* p = results[o].as<float>();
      out[o].insert(out[o].end(), p, p + results[o].element_count());
    }
  }
  return out;
}

Speed MeasureSpeed(Backend& backend, const ModelConfig& config, const ReferenceData& data, double seconds) {
  Speed speed;
  const auto budget = std::chrono::duration<double>(seconds);
  std::vector<double> ms;
  int64_t row = 0;
  const auto one_row = [&] {
    std::vector<Tensor> in = {RowsTensor(config, data, row, 1)}, out;
    row = (row + 1) % data.rows;
    const auto t0 = Clock::now();
    const Status s = backend.Execute(in, out);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    return s;
  };
  for (int i = 0; i < 5; ++i) (void)one_row();  // first calls are slow in every runtime
  ms.clear();
  const auto latency_end = Clock::now() + budget / 2;
  while ((Clock::now() < latency_end || ms.size() < 20) && ms.size() < 100'000) {
    if (!one_row().ok()) break;
  }
  speed.p50_ms = Percentile(ms, 0.5);
  speed.p99_ms = Percentile(ms, 0.99);

  std::vector<int64_t> sizes = {1};
  if (config.max_batch_size > 0) {
    for (int64_t b : {8, 32, 128}) {
      if (b < config.max_batch_size) sizes.push_back(b);
    }
    if (config.max_batch_size > 1) sizes.push_back(config.max_batch_size);
  }
  const auto per_size = budget / 2 / static_cast<double>(sizes.size());
  for (int64_t b : sizes) {
    const int64_t n = std::min(b, data.rows);
    std::vector<Tensor> in = {RowsTensor(config, data, 0, n)}, out;
    (void)backend.Execute(in, out);
    int64_t done = 0;
    const auto t0 = Clock::now();
    while (Clock::now() - t0 < per_size || done == 0) {
      if (!backend.Execute(in, out).ok()) break;
      done += n;
    }
    const double rate = static_cast<double>(done) / std::chrono::duration<double>(Clock::now() - t0).count();
    if (rate > speed.rows_per_s) {
      speed.rows_per_s = rate;
      speed.best_batch = n;
    }
  }
  return speed;
}

std::vector<int64_t> Classes(const std::vector<float>& values, int64_t rows) {
  std::vector<int64_t> out(static_cast<size_t>(std::max<int64_t>(rows, 0)), 0);
  if (rows <= 0) return out;
  const auto width = static_cast<int64_t>(values.size()) / rows;
  for (int64_t r = 0; r < rows && width > 0; ++r) {
    const float* v = values.data() + r * width;
    out[static_cast<size_t>(r)] = width == 1 ? (v[0] >= 0.5f ? 1 : 0) : std::max_element(v, v + width) - v;
  }
  return out;
}

Closeness CompareOutputs(const Outputs& want, const Outputs& got, int64_t rows, const std::vector<double>& labels,
                         size_t outputs) {
  Closeness c;
  double sum = 0;
  size_t count = 0;
  const size_t n = outputs == 0 ? want.size() : std::min(outputs, want.size());
  for (size_t o = 0; o < n; ++o) {
    if (o >= got.size() || got[o].size() != want[o].size()) {
      c.max_abs_diff = INFINITY;
      continue;
    }
    for (size_t i = 0; i < want[o].size(); ++i) {
      const double a = want[o][i], b = got[o][i];
      const double d = std::isnan(a) && std::isnan(b) ? 0 : std::isnan(a) || std::isnan(b) ? INFINITY : std::abs(a - b);
      c.max_abs_diff = std::max(c.max_abs_diff, d);
      sum += d;
      ++count;
    }
  }
  c.mean_abs_diff = count ? sum / static_cast<double>(count) : 0;
  if (want.empty() || got.empty()) return c;
  const auto a = Classes(want[0], rows), b = Classes(got[0], rows);
  int64_t same = 0, right = 0, labelled = 0;
  for (size_t r = 0; r < a.size(); ++r) {
    same += a[r] == b[r];
    if (r < labels.size() && !std::isnan(labels[r])) {
      ++labelled;
      right += b[r] == std::llround(labels[r]);
    }
  }
  c.agreement = rows > 0 ? static_cast<double>(same) / static_cast<double>(rows) : 1;
  if (labelled > 0) c.accuracy = static_cast<double>(right) / static_cast<double>(labelled);
  return c;
}

}  // namespace vigil
