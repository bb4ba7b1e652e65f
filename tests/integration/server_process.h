// Test helpers: run the real `vigil serve` binary as a child process on
// port 0, find its port in the log, and copy the example repository into a
// scratch folder that a test may modify.
#pragma once

#include <rapidjson/document.h>
#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "client/http_client.h"
#include "client/inference_client.h"

namespace vigil::testing {

// Whether this build runs under AddressSanitizer (make test-sanitize): the
// server is several times slower, so load tests scale down what they
// expect of it.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// How a server process is started.
struct Spawn {
  std::string netns;   // run in this network namespace (see TestNetns)
  int file_limit = 0;  // RLIMIT_NOFILE, soft and hard, when > 0
};

class ServerProcess {
 public:
  // Starts `vigil serve --http-port 0 <args>` and waits until it logs
  // event=server_ready (or fails the calling test).
  static std::unique_ptr<ServerProcess> Start(const std::vector<std::string>& args, const Spawn& spawn = {});
  ~ServerProcess();

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  uint16_t grpc_port() const { return grpc_port_; }  // 0 unless started with --grpc-port
  std::unique_ptr<HttpClient> Client() const;
  // Sends `sig` and waits for exit; returns the exit status (-1 on timeout).
  int Signal(int sig, double timeout_s = 30);
  std::string Log() const;
  // Waits until the log contains `needle`.
  bool WaitForLog(const std::string& needle, double timeout_s = 20) const;
  // Waits until the server has scanned its repository `n` more times
  // (vigil_repository_polls_total), for "polling does not ..." checks.
  bool WaitForPolls(int n, double timeout_s = 20) const;

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  uint16_t grpc_port_ = 0;
  std::filesystem::path log_path_;
  std::filesystem::path data_dir_;  // created for this server (removed with it) unless the test gave one
};

// A network namespace of the test's own, joined to this one by a veth pair:
// `host_address` on this side, `inner_address` inside. A server started in
// it (ServerProcess::Start(args, name())) is reached at inner_address and
// sees clients from here as non-loopback peers; traffic never leaves the
// pair. Needs root and iproute2; ok() is false (and says why) otherwise.
class TestNetns {
 public:
  TestNetns();
  ~TestNetns();
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  const std::string& host_address() const { return host_address_; }
  const std::string& inner_address() const { return inner_address_; }
  // Runs `fn` on a thread inside the namespace (sockets it opens live there).
  void RunInside(const std::function<void()>& fn) const;

 private:
  std::string name_, veth_, error_;
  std::string host_address_, inner_address_;
};

// A fresh scratch folder under the system temp dir, removed by the caller.
std::filesystem::path ScratchDir(const std::string& name);
// Copies examples/repository (or the named models of it) into `dest`.
void CopyExampleRepository(const std::filesystem::path& dest, const std::vector<std::string>& models = {});
std::string ReadFile(const std::filesystem::path& p);
void WriteFile(const std::filesystem::path& p, const std::string& text);
// A reply body parsed as JSON (a parse error leaves the document not an object).
rapidjson::Document ParseBody(const std::string& body);
// A reference.csv's rows: 30 features (the label column dropped; `labels`
// receives it when given). Empty `csv`: the example MLP's.
std::vector<std::vector<double>> ReferenceRows(std::vector<int>* labels = nullptr,
                                               const std::filesystem::path& csv = {});
// A JSON infer body with `rows` rows of the 30 breast-cancer features.
std::string FeaturesBody(int rows, const std::string& extra = "");
// A call to the example MLP: its `features` input as FP32 of `shape`,
// holding `bytes` zeroed bytes (not necessarily what the shape needs).
InferCall FeaturesCall(Shape shape, size_t bytes);

// The sum of the /metrics series that start with `prefix` (e.g.
// `vigil_inference_queue_depth{model="m"`); -1 when /metrics cannot be read.
double MetricSum(HttpClient& client, const std::string& prefix);

// Runs `promtool check metrics` on a /metrics body: "" when it passes,
// else promtool's output.
std::string PromtoolCheck(const std::string& metrics);

// Another program the test runs (Alertmanager, Prometheus, nginx): started
// with its output in a log, sent SIGTERM (then SIGKILL after 10 s) when this goes.
class ChildProcess {
 public:
  // Starts `argv` (argv[0] a path); null when it could not be started.
  static std::unique_ptr<ChildProcess> Start(const std::vector<std::string>& argv);
  ~ChildProcess();
  pid_t pid() const { return pid_; }
  bool running() const;
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_path_;
};

// A loopback port nothing listens on now (bound and released: another
// process may take it first, which the caller sees as a failed start).
uint16_t FreeLoopbackPort();

// Runs `vigil <args>` to completion; returns its exit code, stdout and stderr.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult RunVigil(const std::vector<std::string>& args, double timeout_s = 120);

}  // namespace vigil::testing
