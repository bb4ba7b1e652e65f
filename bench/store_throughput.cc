// The two stores side by side, in one run (bench/store.sh runs it):
// - the prediction log: rows/s through PredictionLog (its bounded queue and
//   writer thread, batches as the server makes them), ROWS rows;
// - feedback: the latency of one durable WriteFeedback of one label, as
//   POST /v1/feedback makes it, p50/p99 over FEEDBACK calls, followed by the
//   KnownPredictions lookup the route makes.
//
//   store_throughput DATA_DIR POSTGRES_URL [ROWS] [FEEDBACK]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/logging.h"
#include "core/uuid.h"
#include "store/prediction_log.h"
#include "store/store.h"

namespace vigil {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

int Run(const std::string& name, Store& store, int64_t rows, int64_t feedback) {
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  // The server's records: a 2-class answer, no inputs, a routing key.
  std::vector<std::string> ids;
  ids.reserve(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) ids.push_back(NewUuidV7(now_ms));
  size_t written = 0, dropped = 0;
  PredictionLog::Options o;
  o.retention_ms = 0;
  o.max_rows = 0;
  o.on_records = [&](size_t w, size_t d) {
    written += w;
    dropped += d;
  };
  const auto start = Clock::now();
  {
    PredictionLog log(store, o);
    for (int64_t i = 0; i < rows; ++i) {
      PredictionRecord r{ids[static_cast<size_t>(i)], now_ms + i / 1000, "ep", i % 5 ? "production" : "v2",
                         "breast_cancer_mlp", 1, 180, false, "[0.0312,0.9688]", "", "k" + std::to_string(i % 997)};
      log.Add(std::move(r));
      // The queue holds 65,536: wait for the writer every 16,384, so nothing
      // is dropped and the figure is the writer's pace, not the producer's.
      if (i % 16384 == 16383) log.Flush();
    }
    log.Flush();
  }
  const double log_s = Seconds(Clock::now() - start);

  std::vector<double> write_ms, lookup_ms;
  for (int64_t i = 0; i < feedback; ++i) {
    const std::string& id = ids[static_cast<size_t>(i * 7919 % rows)];
    const auto t0 = Clock::now();
    if (Status s = store.WriteFeedback({{id, now_ms + 5000, static_cast<double>(i % 2), {}}}); !s.ok()) {
      std::fprintf(stderr, "%s: feedback failed: %s\n", name.c_str(), s.message().c_str());
      return 1;
    }
    const auto t1 = Clock::now();
    auto known = store.KnownPredictions({id});
    const auto t2 = Clock::now();
    if (!known.ok() || known->size() != 1) {
      std::fprintf(stderr, "%s: the prediction of a label was not found\n", name.c_str());
      return 1;
    }
    write_ms.push_back(Seconds(t1 - t0) * 1e3);
    lookup_ms.push_back(Seconds(t2 - t1) * 1e3);
  }
  std::printf("| %s | %lld | %zu | %zu | %.0f | %.3f | %.3f | %.3f | %.3f |\n", name.c_str(),
              static_cast<long long>(rows), written, dropped, static_cast<double>(written) / log_s,
              Quantile(write_ms, 0.5), Quantile(write_ms, 0.99), Quantile(lookup_ms, 0.5), Quantile(lookup_ms, 0.99));
  return 0;
}

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DATA_DIR POSTGRES_URL [ROWS] [FEEDBACK]\n", argv[0]);
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  const int64_t rows = argc > 3 ? std::max(1000LL, std::atoll(argv[3])) : 200'000;
  const int64_t feedback = argc > 4 ? std::max(10LL, std::atoll(argv[4])) : 2'000;
  auto sqlite = vigil::OpenSqliteStore(argv[1]);
  auto postgres = vigil::OpenPostgresStore(argv[2]);
  if (!sqlite.ok() || !postgres.ok()) {
    std::fprintf(stderr, "%s\n", (!sqlite.ok() ? sqlite.status() : postgres.status()).message().c_str());
    return 1;
  }
  std::printf(
      "| store | rows | written | dropped | log rows/s | feedback write p50 ms | p99 ms | id lookup p50 ms | p99 ms |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  return vigil::Run("sqlite", **sqlite, rows, feedback) || vigil::Run("postgres", **postgres, rows, feedback);
}
