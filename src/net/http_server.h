// HttpServer: HTTP/1.1 with keep-alive on Boost.Beast, asynchronous.
//
// The server reads a request, hands it to the Handler with a Responder, and
// writes whatever the Responder is given — from any thread, exactly once —
// before reading the next request on that connection. Bodies over the size
// limit get 413, unparsable requests 400; both close the connection.
//
// What one client can hold is bounded: at most `max_connections` are open
// (more are answered 503 and closed at once); bodies still on the wire are
// reserved against `max_buffered_bytes` shared by all connections (503 when
// it is spent) and must arrive within `body_timeout` (408); a connection idle
// for `idle_timeout` is closed. When accept() fails (out of file
// descriptors) the listener backs off instead of spinning, and says so in
// the log at most every 10 s.
//
// Thread-safe. Lifecycle: Create (binds) → Start → StopAccepting → Stop.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>

#include "core/status.h"
#include "monitoring/serving_metrics.h"

namespace vigil {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

// Who sent a request, for access control.
struct RequestInfo {
  std::string peer;     // address:port
  std::string address;  // the peer's IP address
  bool loopback = false;
};

class HttpServer {
 public:
  struct Options {
    std::string host = "0.0.0.0";
    uint16_t port = 8000;  // 0 picks a free port
    int threads = 0;       // 0 = one per core
    size_t max_body_bytes = 64 << 20;
    size_t max_connections = 10'000;
    size_t max_buffered_bytes = 256 << 20;
    std::chrono::milliseconds body_timeout{30'000};
    std::chrono::milliseconds idle_timeout{120'000};
    const HttpMetrics* metrics = nullptr;  // may be null
    // TLS (HTTPS) when a certificate and key are given; a client CA makes
    // it mutual. Plain-text clients are then refused (their handshake fails).
    std::string tls_cert, tls_key, tls_client_ca;
    // Called around each group of requests that became readable together on
    // one I/O thread; what it returns is held while their handlers run (the
    // server passes an InferenceService::BatchScope so they share a batch).
    std::function<std::shared_ptr<void>()> dispatch_scope;
  };
  using Responder = std::function<void(HttpResponse&&)>;
  using Handler = std::function<void(HttpRequest&&, const RequestInfo&, Responder)>;

  static StatusOr<std::unique_ptr<HttpServer>> Create(Options options, Handler handler);
  ~HttpServer();

  uint16_t port() const { return port_; }
  void Start();
  // Closes the listening socket; open connections are still served, and
  // every response from now on carries "Connection: close".
  void StopAccepting();
  // Stops the I/O threads; pending connections are dropped.
  void Stop();
  // Requests read and not yet fully written.
  int64_t InFlight() const { return in_flight_.load(); }
  // Connections open now.
  int64_t Connections() const;

  struct Shared;

 private:
  HttpServer() = default;
  void Accept();
  // After a failed accept: logs (at most every 10 s) and retries after a
  // delay that doubles while accepts keep failing, up to a second.
  void BackOff(const boost::system::error_code& ec);
  // Answers 503 on a connection past max_connections and closes it.
  void Refuse(boost::asio::ip::tcp::socket socket);

  std::unique_ptr<Shared> shared_;  // first member: destroyed last
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::unique_ptr<boost::asio::steady_timer> backoff_timer_;  // on the acceptor's thread
  std::chrono::milliseconds backoff_{0};                      // touched only on the acceptor's thread
  std::chrono::steady_clock::time_point last_accept_log_{};   // likewise
  uint64_t accept_errors_unlogged_ = 0;                       // likewise
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  int thread_count_ = 1;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<bool> stopped_{false};
};

// Builds a response with a body and content type; keeps the request's version.
HttpResponse MakeResponse(unsigned status, std::string body, std::string_view content_type = "application/json");

}  // namespace vigil
