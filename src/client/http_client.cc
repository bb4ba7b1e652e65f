#include "client/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>

#include "protocol/tls.h"
#include "protocol/tls_stream.h"

namespace vigil {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct HttpClient::Impl {
  Options options;
  net::io_context ioc;
  std::shared_ptr<net::ssl::context> tls;  // with options.tls
  // One of the two is open (or neither, between connections).
  std::unique_ptr<beast::tcp_stream> stream;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_stream;
  beast::flat_buffer buffer;

  beast::tcp_stream& Tcp() { return tls_stream ? beast::get_lowest_layer(*tls_stream) : *stream; }
  bool IsOpen() const { return stream || tls_stream; }
  void Reset() {
    stream.reset();
    tls_stream.reset();
  }

  Status Open() {
    Reset();
    auto tcp_stream = std::make_unique<beast::tcp_stream>(ioc);
    beast::error_code ec;
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(options.host, std::to_string(options.port), ec);
    if (ec) return Unavailable("cannot resolve " + options.host + ": " + ec.message());
    tcp_stream->expires_after(options.timeout);
    if (options.local_address.empty()) {
      tcp_stream->connect(results, ec);
    } else {
      // Bound first, so the server sees this address.
      const auto local = net::ip::make_address(options.local_address, ec);
      if (ec) return InvalidArgument("bad local address '" + options.local_address + "': " + ec.message());
      ec = net::error::host_not_found;
      for (const auto& entry : results) {
        auto& socket = tcp_stream->socket();
        beast::error_code step;
        if (socket.is_open()) socket.close(step);
        if (entry.endpoint().protocol() != (local.is_v4() ? tcp::v4() : tcp::v6())) continue;
        socket.open(entry.endpoint().protocol(), step);
        if (!step) socket.bind(tcp::endpoint(local, 0), step);
        if (!step) socket.connect(entry.endpoint(), step);
        ec = step;
        if (!ec) break;
      }
    }
    if (ec) {
      return Unavailable("cannot connect to " + options.host + ":" + std::to_string(options.port) + ": " +
                         ec.message());
    }
    tcp_stream->socket().set_option(tcp::no_delay(true), ec);
    buffer.clear();
    if (!options.tls) {
      stream = std::move(tcp_stream);
      return Status::Ok();
    }
    if (!tls) {
      VIGIL_ASSIGN_OR_RETURN(tls, MakeClientTlsContext({options.tls_ca, options.tls_cert, options.tls_key}));
    }
    auto secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*tcp_stream), *tls);
    VIGIL_RETURN_IF_ERROR(ClientHandshake(*secure, options.host, options.port));
    tls_stream = std::move(secure);
    return Status::Ok();
  }

  // One exchange on whichever stream is open.
  template <class Stream>
  void Exchange(Stream& s, http::request<http::string_body>& req, http::response_parser<http::string_body>& parser,
                beast::error_code& ec) {
    http::write(s, req, ec);
    if (!ec) http::read(s, buffer, parser, ec);
  }
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpClient::~HttpClient() {
  if (impl_ && impl_->IsOpen()) {
    beast::error_code ec;
    impl_->Tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
  }
}

StatusOr<std::unique_ptr<HttpClient>> HttpClient::Connect(Options options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  VIGIL_RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

StatusOr<HttpReply> HttpClient::Request(const std::string& method, const std::string& target, const std::string& body,
                                        const std::map<std::string, std::string>& headers) {
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, impl_->options.host);
  req.keep_alive(true);
  for (const auto& [k, v] : headers) req.set(k, v);
  if (!body.empty() && headers.find("Content-Type") == headers.end())
    req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();

  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!impl_->IsOpen()) VIGIL_RETURN_IF_ERROR(impl_->Open());
    beast::error_code ec;
    impl_->Tcp().expires_after(impl_->options.timeout);
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 32);
    if (impl_->tls_stream) {
      impl_->Exchange(*impl_->tls_stream, req, parser, ec);
    } else {
      impl_->Exchange(*impl_->stream, req, parser, ec);
    }
    if (ec) {
      impl_->Reset();
      // A keep-alive connection the server closed: retry once on a new one.
      if (attempt == 0 && (ec == http::error::end_of_stream || ec == net::error::connection_reset ||
                           ec == net::error::broken_pipe || ec == net::error::eof)) {
        continue;
      }
      return Unavailable(method + " " + target + " failed: " + ec.message());
    }
    auto res = parser.release();
    HttpReply reply;
    reply.status = res.result_int();
    for (const auto& f : res) {
      std::string name(f.name_string());
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      reply.headers[name] = std::string(f.value());
    }
    reply.body = std::move(res.body());
    if (!res.keep_alive()) impl_->Reset();
    return reply;
  }
  return Unavailable(method + " " + target + " failed");
}

}  // namespace vigil
