// Load generation for `vigil bench`: engines that keep a server busy over
// HTTP or gRPC and a recorder they report into.
//
// Closed loop: `concurrency` requests always outstanding; each answer sends
// the next. Open loop: requests are scheduled at a fixed or Poisson rate,
// independent of the answers, and latency counts from the *scheduled* send
// time, so a server (or a client) that falls behind shows up as latency
// instead of silently lowering the offered load.
//
// Every request body is encoded once up front; the hot path only copies
// pointers. Recording is lock-free (a log-linear histogram of atomics);
// errors, rare by nature, take a mutex.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/inference_client.h"
#include "core/latency_histogram.h"
#include "core/status.h"
#include "core/thread_annotations.h"

namespace vigil {

// Where the engines report. Thread-safe.
class LoadRecorder {
 public:
  struct ErrorCount {
    uint64_t count = 0;
    std::string example;  // the first message seen of this kind
  };

  void Success(int64_t latency_ns) { latency_.Record(latency_ns); }
  // Every answer (or failure to get one) with the sample sent, its latency
  // from the scheduled send, the HTTP status (0: none came: a timeout or a
  // broken connection) and the body. Set before the engine starts; HTTP only.
  using ReplyObserver = std::function<void(size_t sample, int64_t latency_ns, unsigned status, std::string_view body)>;
  void SetReplyObserver(ReplyObserver observer) { observer_ = std::move(observer); }
  bool observing() const { return static_cast<bool>(observer_); }
  void Reply(size_t sample, int64_t latency_ns, unsigned status, std::string_view body) const {
    observer_(sample, latency_ns, status, body);
  }
  // `kind` groups errors ("HTTP 503", "UNAVAILABLE", "connection"); the
  // message is kept once per kind as an example.
  void Error(const std::string& kind, std::string_view message);

  struct Snapshot {
    LatencyHistogram::Snapshot latency;
    std::map<std::string, ErrorCount> errors;
    uint64_t error_total() const;
  };
  Snapshot Take() const;

 private:
  LatencyHistogram latency_;
  ReplyObserver observer_;
  mutable Mutex mu_;
  std::map<std::string, ErrorCount> errors_ GUARDED_BY(mu_);
};

struct LoadLevel {
  // concurrency > 0: closed loop; else rate > 0: open loop.
  int concurrency = 0;
  double rate = 0;       // requests per second
  bool poisson = false;  // exponential gaps instead of fixed ones
  std::string Describe() const;
};

struct LoadTarget {
  ClientOptions client;
  std::string model;
  std::string version;
  std::vector<InferCall> samples;            // cycled through; at least one
  int threads = 0;                           // client I/O threads; 0 = one per core, at most 4
  int max_connections = 1024;                // open loop over HTTP: connections opened on demand up to this
  std::chrono::milliseconds timeout{30000};  // per request
};

class LoadEngine {
 public:
  virtual ~LoadEngine() = default;
  // Connects and starts sending at `level`; fails (nothing running) when the
  // server cannot be reached.
  virtual Status Start(const LoadLevel& level) = 0;
  // Stops sending, waits up to `grace` for answers in flight, abandons the rest.
  virtual void Stop(std::chrono::milliseconds grace) = 0;
  // Requests sent and not answered yet.
  virtual int64_t InFlight() const = 0;
  // Open loop: changes the rate while running (a rate schedule). An engine
  // that cannot says so.
  virtual Status SetRate(double rate) {
    (void)rate;
    return Unimplemented("this protocol's load engine cannot change its rate while running; use HTTP");
  }
};

StatusOr<std::unique_ptr<LoadEngine>> MakeLoadEngine(const LoadTarget& target, LoadRecorder* recorder);

namespace internal {
StatusOr<std::unique_ptr<LoadEngine>> MakeHttpLoadEngine(const LoadTarget& target, LoadRecorder* recorder);
StatusOr<std::unique_ptr<LoadEngine>> MakeGrpcLoadEngine(const LoadTarget& target, LoadRecorder* recorder);
int DefaultClientThreads(int requested);
}  // namespace internal

}  // namespace vigil
