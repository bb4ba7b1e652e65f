#include "client/load.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "client/bench.h"

namespace vigil {
namespace {

TEST(LatencyHistogram, QuantilesWithinTheBucketPrecision) {
  LatencyHistogram h;
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> dist(13, 1);  // ~0.4 ms median, long tail
  std::vector<int64_t> values;
  for (int i = 0; i < 100000; ++i) {
    values.push_back(static_cast<int64_t>(dist(rng)));
    h.Record(values.back());
  }
  std::sort(values.begin(), values.end());
  const auto s = h.Take();
  EXPECT_EQ(s.total, values.size());
  for (double q : {0.5, 0.9, 0.95, 0.99, 0.999}) {
    const double exact = static_cast<double>(values[static_cast<size_t>(q * values.size()) - 1]);
    EXPECT_NEAR(s.Quantile(q) / exact, 1.0, 0.02) << "q=" << q;
  }
  double sum = 0;
  for (auto v : values) sum += static_cast<double>(v);
  EXPECT_NEAR(s.Mean(), sum / values.size(), 1.0);
}

TEST(LatencyHistogram, BucketsAreMonotoneAndSnapshotsSubtract) {
  size_t last = 0;
  for (int64_t v = 1; v < (int64_t{1} << 30); v = v * 5 / 4 + 1) {
    const size_t b = LatencyHistogram::BucketOf(v);
    EXPECT_GE(b, last);
    last = b;
    EXPECT_NEAR(LatencyHistogram::BucketMidpoint(b) / std::max<double>(1, v), 1.0, v < 128 ? 0.0 : 0.016);
  }
  EXPECT_EQ(LatencyHistogram::BucketOf(int64_t{1} << 50), LatencyHistogram::kBuckets - 1);
  LatencyHistogram h;
  h.Record(1000);
  const auto a = h.Take();
  h.Record(2000);
  h.Record(3000);
  const auto d = h.Take() - a;
  EXPECT_EQ(d.total, 2u);
  EXPECT_DOUBLE_EQ(d.Mean(), 2500);
}

// A deliberately slow HTTP server: one connection, answers one request
// every `delay`, in order.
class SlowServer {
 public:
  explicit SlowServer(std::chrono::milliseconds delay) : delay_(delay) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(listen_fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~SlowServer() {
    stop_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    if (conn_fd_ >= 0) shutdown(conn_fd_, SHUT_RDWR);
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  void Serve() {
    conn_fd_ = accept(listen_fd_, nullptr, nullptr);
    if (conn_fd_ < 0) return;
    std::string buffer;
    char chunk[4096];
    while (!stop_) {
      // One request: head up to the blank line, then Content-Length bytes.
      size_t head_end;
      while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = read(conn_fd_, chunk, sizeof(chunk));
        if (n <= 0) return;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      const auto cl = buffer.find("Content-Length: ");
      const size_t body = cl < head_end ? std::stoul(buffer.substr(cl + 16)) : 0;
      while (buffer.size() < head_end + 4 + body) {
        const ssize_t n = read(conn_fd_, chunk, sizeof(chunk));
        if (n <= 0) return;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      buffer.erase(0, head_end + 4 + body);
      std::this_thread::sleep_for(delay_);
      const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
      if (send(conn_fd_, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) return;
    }
  }

  std::chrono::milliseconds delay_;
  int listen_fd_ = -1;
  std::atomic<int> conn_fd_{-1};
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

LoadTarget SlowTarget(uint16_t port) {
  LoadTarget t;
  t.client.host = "127.0.0.1";
  t.client.port = port;
  t.model = "slow";
  InferCall call;
  Tensor x;
  x.name = "x";
  x.datatype = DataType::kFp32;
  x.shape = {1};
  x.data.resize(4);
  call.inputs.push_back(x);
  t.samples.push_back(call);
  t.threads = 1;
  t.max_connections = 1;
  return t;
}

// Open loop at 100 req/s against a server that manages 25: the requests
// queue in the client, and their latency counts from the scheduled send
// time, so it grows far beyond the server's 40 ms per answer.
TEST(LoadEngine, OpenLoopLatencyCountsFromTheScheduledTime) {
  SlowServer server(std::chrono::milliseconds(40));
  LoadRecorder recorder;
  auto engine = MakeLoadEngine(SlowTarget(server.port()), &recorder);
  ASSERT_TRUE(engine.ok());
  ASSERT_TRUE((*engine)->Start({0, 100, false}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  (*engine)->Stop(std::chrono::milliseconds(2000));
  const auto s = recorder.Take();
  ASSERT_GE(s.latency.total, 20u);
  EXPECT_LE(s.latency.total, 35u);  // the server's pace, not the offered rate
  EXPECT_GT(s.latency.Quantile(0.9), 300e6) << "p90 must include the wait behind the busy connection";
  EXPECT_EQ(s.error_total(), 0u);
}

// Closed loop with one connection: latency is the server's time per answer.
TEST(LoadEngine, ClosedLoopLatencyIsTheServiceTime) {
  SlowServer server(std::chrono::milliseconds(20));
  LoadRecorder recorder;
  auto engine = MakeLoadEngine(SlowTarget(server.port()), &recorder);
  ASSERT_TRUE(engine.ok());
  ASSERT_TRUE((*engine)->Start({1, 0, false}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  (*engine)->Stop(std::chrono::milliseconds(2000));
  const auto s = recorder.Take();
  ASSERT_GE(s.latency.total, 10u);
  EXPECT_GT(s.latency.Quantile(0.5), 19e6);
  EXPECT_LT(s.latency.Quantile(0.5), 60e6);
}

// A server that never answers in time: each request fails as a timeout
// after --timeout, its connection closes, and stopping does not wait on it.
TEST(LoadEngine, RequestsPastTheTimeoutFailAndDoNotHangTheRun) {
  SlowServer server(std::chrono::milliseconds(1500));
  LoadRecorder recorder;
  LoadTarget target = SlowTarget(server.port());
  target.timeout = std::chrono::milliseconds(150);
  auto engine = MakeLoadEngine(target, &recorder);
  ASSERT_TRUE(engine.ok());
  ASSERT_TRUE((*engine)->Start({1, 0, false}).ok());
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (recorder.Take().errors["timeout"].count < 3 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  (*engine)->Stop(std::chrono::milliseconds(30000));
  EXPECT_EQ((*engine)->InFlight(), 0);
  const auto s = recorder.Take();
  EXPECT_GE(s.errors.at("timeout").count, 3u);
  EXPECT_NE(s.errors.at("timeout").example.find("150 ms"), std::string::npos) << s.errors.at("timeout").example;
  EXPECT_EQ(s.latency.total, 0u);
}

TEST(LoadEngine, UnreachableServerFailsToStart) {
  uint16_t port;
  {
    SlowServer s(std::chrono::milliseconds(1));
    port = s.port();
  }
  LoadRecorder recorder;
  auto engine = MakeLoadEngine(SlowTarget(port), &recorder);
  ASSERT_TRUE(engine.ok());
  const Status s = (*engine)->Start({2, 0, false});
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("cannot connect to 127.0.0.1:" + std::to_string(port)), std::string::npos) << s.message();
}

TEST(Bench, ParsesTheServersModelCounters) {
  const std::string text =
      "# TYPE vigil_inference_queue_duration_seconds histogram\n"
      "vigil_inference_queue_duration_seconds_sum{model=\"m\",version=\"1\"} 0.5\n"
      "vigil_inference_queue_duration_seconds_count{model=\"m\",version=\"1\"} 10\n"
      "vigil_inference_queue_duration_seconds_sum{model=\"m\",version=\"2\"} 1.5\n"
      "vigil_inference_queue_duration_seconds_count{model=\"m\",version=\"2\"} 30\n"
      "vigil_inference_queue_duration_seconds_sum{model=\"mm\",version=\"1\"} 9\n"
      "vigil_inference_requests_total{model=\"m\",version=\"2\"} 30\n";
  const ModelCounters all = ParseModelCounters(text, "m", "");
  EXPECT_DOUBLE_EQ(all.queue_sum, 2.0);
  EXPECT_DOUBLE_EQ(all.queue_count, 40);
  EXPECT_DOUBLE_EQ(all.requests, 30);
  const ModelCounters v1 = ParseModelCounters(text, "m", "1");
  EXPECT_DOUBLE_EQ(v1.queue_sum, 0.5);
}

TEST(Bench, BuildsSamplesFromCsvAndJsonAndNamesBadRows) {
  ModelMetadata m;
  m.name = "m";
  m.inputs.push_back({"features", DataType::kFp32, {-1, 3}});
  const std::string dir = ::testing::TempDir();
  const std::string csv = dir + "/rows.csv", json = dir + "/rows.json", bad = dir + "/bad.csv";
  std::FILE* f = std::fopen(csv.c_str(), "w");
  std::fputs("a,b,c,label\n1,2,3,0\n4,5,6,1\n7,8,9,0\n", f);
  std::fclose(f);
  f = std::fopen(json.c_str(), "w");
  std::fputs(R"({"data":[{"features":[1,2,3]},{"features":{"content":[[4,5,6],[7,8,9]],"shape":[2,3]}}]})", f);
  std::fclose(f);
  f = std::fopen(bad.c_str(), "w");
  std::fputs("1,2,3\n4,x,6\n", f);
  std::fclose(f);

  for (const std::string& path : {csv, json}) {
    std::string note;
    auto samples = BuildSamples(m, 2, path, &note);
    ASSERT_TRUE(samples.ok()) << samples.status().message();
    EXPECT_NE(note.find("3 rows"), std::string::npos) << note;
    ASSERT_EQ(samples->size(), 1u);  // 3 rows / batch 2
    const Tensor& t = (*samples)[0].inputs[0];
    EXPECT_EQ(t.shape, (Shape{2, 3}));
    EXPECT_EQ(t.as<float>()[3], 4.0f);
  }
  std::string note;
  auto broken = BuildSamples(m, 1, bad, &note);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("line 2"), std::string::npos) << broken.status().message();
  auto missing = BuildSamples(m, 1, dir + "/none.csv", &note);
  EXPECT_NE(missing.status().message().find("cannot read"), std::string::npos);
  ModelMetadata unbatched = m;
  unbatched.inputs[0].shape = {3};
  EXPECT_FALSE(BuildSamples(unbatched, 4, "", &note).ok());
}

}  // namespace
}  // namespace vigil
