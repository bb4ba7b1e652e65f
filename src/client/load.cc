#include "client/load.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <thread>

namespace vigil {

void LoadRecorder::Error(const std::string& kind, std::string_view message) {
  MutexLock lock(mu_);
  ErrorCount& e = errors_[kind];
  if (e.count++ == 0) e.example = std::string(message.substr(0, 300));
}

LoadRecorder::Snapshot LoadRecorder::Take() const {
  Snapshot s;
  s.latency = latency_.Take();
  MutexLock lock(mu_);
  s.errors = errors_;
  return s;
}

uint64_t LoadRecorder::Snapshot::error_total() const {
  uint64_t n = 0;
  for (const auto& [kind, e] : errors) n += e.count;
  return n;
}

std::string LoadLevel::Describe() const {
  if (concurrency > 0) return fmt::format("concurrency {}", concurrency);
  return fmt::format("{} {} req/s", poisson ? "poisson" : "rate", rate);
}

namespace internal {
int DefaultClientThreads(int requested) {
  if (requested > 0) return requested;
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
}
}  // namespace internal

StatusOr<std::unique_ptr<LoadEngine>> MakeLoadEngine(const LoadTarget& target, LoadRecorder* recorder) {
  if (target.samples.empty()) return InvalidArgument("no request samples to send");
  if (target.client.protocol == Protocol::kGrpc) return internal::MakeGrpcLoadEngine(target, recorder);
  return internal::MakeHttpLoadEngine(target, recorder);
}

}  // namespace vigil
