#include "client/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>

namespace vigil {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct HttpClient::Impl {
  Options options;
  net::io_context ioc;
  std::unique_ptr<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  Status Open() {
    stream = std::make_unique<beast::tcp_stream>(ioc);
    beast::error_code ec;
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(options.host, std::to_string(options.port), ec);
    if (ec) return Unavailable("cannot resolve " + options.host + ": " + ec.message());
    stream->expires_after(options.timeout);
    stream->connect(results, ec);
    if (ec) {
      return Unavailable("cannot connect to " + options.host + ":" + std::to_string(options.port) + ": " +
                         ec.message());
    }
    stream->socket().set_option(tcp::no_delay(true), ec);
    buffer.clear();
    return Status::Ok();
  }
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpClient::~HttpClient() {
  if (impl_ && impl_->stream) {
    beast::error_code ec;
    impl_->stream->socket().shutdown(tcp::socket::shutdown_both, ec);
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
    if (!impl_->stream) VIGIL_RETURN_IF_ERROR(impl_->Open());
    beast::error_code ec;
    impl_->stream->expires_after(impl_->options.timeout);
    http::write(*impl_->stream, req, ec);
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 32);
    if (!ec) http::read(*impl_->stream, impl_->buffer, parser, ec);
    if (ec) {
      impl_->stream.reset();
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
    if (!res.keep_alive()) impl_->stream.reset();
    return reply;
  }
  return Unavailable(method + " " + target + " failed");
}

}  // namespace vigil
