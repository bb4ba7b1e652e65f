// HttpClient: a small blocking HTTP/1.1 client with keep-alive, used by the
// CLI, the benchmarks and the tests. One connection per client; not
// thread-safe (use one client per thread).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "core/status.h"

namespace vigil {

struct HttpReply {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

class HttpClient {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 8000;
    std::chrono::milliseconds timeout{30000};
    // HTTPS: the server's certificate must chain to `tls_ca` (empty: the
    // system's CAs) and name `host`; a client certificate for mutual TLS.
    bool tls = false;
    std::string tls_ca, tls_cert, tls_key;
    // Connect from this local address (e.g. 127.0.0.2); empty: any.
    std::string local_address;
  };

  // Connects; fails with kUnavailable when nothing listens there.
  static StatusOr<std::unique_ptr<HttpClient>> Connect(Options options);
  ~HttpClient();

  // Sends one request and reads the reply. Reconnects once if the server
  // closed an idle keep-alive connection.
  StatusOr<HttpReply> Request(const std::string& method, const std::string& target, const std::string& body = "",
                              const std::map<std::string, std::string>& headers = {});
  StatusOr<HttpReply> Get(const std::string& target) { return Request("GET", target); }
  StatusOr<HttpReply> Post(const std::string& target, const std::string& body,
                           const std::map<std::string, std::string>& headers = {}) {
    return Request("POST", target, body, headers);
  }
  StatusOr<HttpReply> Put(const std::string& target, const std::string& body,
                          const std::map<std::string, std::string>& headers = {}) {
    return Request("PUT", target, body, headers);
  }

  struct Impl;

 private:
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil
