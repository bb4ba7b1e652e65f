// The serving request and reply every frontend shares: what a decoded
// inference call holds before it meets a model config, and what comes back.
// Frontends (REST, gRPC) decode into InferCall and encode InferReply; the
// inference service, routing and the scheduler never see a wire format.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_annotations.h"

namespace vigil {

using ParamValue = std::variant<bool, int64_t, double, std::string>;
using Params = std::map<std::string, ParamValue>;

struct RequestedOutput {
  std::string name;
  bool binary = false;
};

// Shared by the frontend that hears a client give up and the request it
// stands for. The frontend calls Cancel; whoever queued the request
// registers, with OnCancel, how to act on it at once (wake the scheduler so
// the slot is freed), and the scheduler drops a cancelled request unrun.
// Copies share one state; a default token (REST: a client that goes away
// just closes its connection) can never be cancelled and costs nothing.
// Thread-safe.
class CancelToken {
 public:
  CancelToken() = default;
  static CancelToken Create() {
    CancelToken t;
    t.state_ = std::make_shared<State>();
    return t;
  }

  void Cancel() const {
    if (!state_) return;
    std::function<void()> act;
    {
      MutexLock lock(state_->mu);
      if (state_->cancelled.exchange(true)) return;
      act = std::move(state_->on_cancel);
    }
    if (act) act();
  }
  bool cancelled() const { return state_ && state_->cancelled.load(std::memory_order_relaxed); }
  // False for a default token, which can never be cancelled.
  bool cancellable() const { return state_ != nullptr; }
  // Runs `act` when the token is cancelled (now, if it already is). One
  // action per token: a later call replaces an earlier one.
  void OnCancel(std::function<void()> act) const {
    if (!state_) return;
    {
      MutexLock lock(state_->mu);
      if (!state_->cancelled.load()) {
        state_->on_cancel = std::move(act);
        return;
      }
    }
    act();
  }

 private:
  struct State {
    std::atomic<bool> cancelled{false};
    Mutex mu;
    std::function<void()> on_cancel GUARDED_BY(mu);
  };
  std::shared_ptr<State> state_;
};

// A decoded inference call, before it meets a model config.
struct InferCall {
  std::string model;    // a model or an endpoint
  int64_t version = 0;  // 0: the latest ready version (the server's choice)
  std::string id;
  Params parameters;
  std::vector<Tensor> inputs;            // in request order
  std::vector<RequestedOutput> outputs;  // empty = all
  bool binary_output = false;            // "binary_data_output": true
  // When the client stops waiting (a gRPC deadline); the `timeout`
  // parameter and the model's default timeout may only make it earlier.
  std::optional<SteadyTime> deadline;
  CancelToken cancel;
  // Request headers (HTTP) or metadata (gRPC) by lower-case name, for
  // endpoint routing; only valid while InferenceService::Infer runs. May be empty.
  std::function<std::optional<std::string>(std::string_view name)> header;
  // Set only inside the server, never from the wire: a replay of logged
  // traffic (a rollout benchmark), which monitoring must not count again.
  bool replay = false;
};

struct InferReply {
  std::string model;
  int64_t version = 0;  // the version that answered
  std::string id;
  Params parameters;
  std::vector<Tensor> outputs;
  std::vector<bool> binary;  // per output: send as binary
};

// Parses a version as the wire carries it: "" → 0 (latest), "3" → 3; other
// text is an error that names it.
StatusOr<int64_t> ParseVersionString(std::string_view version);

// The version as the wire carries it: 0 → "", 3 → "3".
inline std::string VersionString(int64_t version) { return version ? std::to_string(version) : ""; }

}  // namespace vigil
