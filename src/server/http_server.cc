#include "server/http_server.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>

#include "core/logging.h"
#include "server/oip_json.h"

namespace vigil {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct HttpServer::Shared {
  net::io_context ioc;
  // Keeps run() going while requests wait in a scheduler with no I/O pending
  // (e.g. after the acceptor closes during a drain); reset by Stop().
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  Handler handler;
  Options options;
  std::atomic<int64_t>* in_flight = nullptr;
  std::atomic<bool> draining{false};
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Shared* shared) : stream_(std::move(socket)), shared_(shared) {}

  void Start() { ReadNext(); }

 private:
  void ReadNext() {
    parser_.emplace();
    parser_->body_limit(shared_->options.max_body_bytes);
    parser_->header_limit(64 * 1024);
    stream_.expires_after(std::chrono::seconds(120));
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted || ec == beast::error::timeout ||
        ec == net::error::connection_reset || ec == net::error::eof) {
      return Close();
    }
    if (ec) {
      // Malformed or oversized: answer, then close.
      const bool too_big = ec == http::error::body_limit;
      HttpResponse res = MakeResponse(
          too_big ? 413 : 400,
          ErrorJson(too_big ? "request body exceeds the limit of " + std::to_string(shared_->options.max_body_bytes) +
                                  " bytes (--max-body-bytes)"
                            : "malformed HTTP request: " + ec.message()));
      res.keep_alive(false);
      shared_->in_flight->fetch_add(1);
      return Write(std::move(res), true);
    }
    HttpRequest req = parser_->release();
    const bool keep_alive = req.keep_alive();
    const unsigned version = req.version();
    shared_->in_flight->fetch_add(1);
    auto self = shared_from_this();
    shared_->handler(std::move(req), [self, keep_alive, version](HttpResponse&& res) {
      res.version(version);
      const bool close = !keep_alive || self->shared_->draining.load();
      res.keep_alive(!close);
      res.prepare_payload();
      net::post(self->stream_.get_executor(),
                [self, res = std::move(res), close]() mutable { self->Write(std::move(res), close); });
    });
  }

  void Write(HttpResponse&& res, bool close) {
    response_ = std::make_unique<HttpResponse>(std::move(res));
    response_->prepare_payload();
    http::async_write(stream_, *response_,
                      [self = shared_from_this(), close](beast::error_code ec, size_t) {
                        self->shared_->in_flight->fetch_sub(1);
                        self->response_.reset();
                        if (ec || close) return self->Close();
                        self->ReadNext();
                      });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::unique_ptr<HttpResponse> response_;
  HttpServer::Shared* shared_;  // outlives every session (owns the io_context)
};

}  // namespace

HttpResponse MakeResponse(unsigned status, std::string body, std::string_view content_type) {
  HttpResponse res{static_cast<http::status>(status), 11};
  res.set(http::field::server, "vigil");
  res.set(http::field::content_type, boost::beast::string_view(content_type.data(), content_type.size()));
  res.body() = std::move(body);
  return res;
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(Options options, Handler handler) {
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->shared_ = std::make_unique<Shared>();
  s->shared_->handler = std::move(handler);
  s->shared_->options = options;
  s->shared_->in_flight = &s->in_flight_;
  s->thread_count_ = options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  beast::error_code ec;
  auto address = net::ip::make_address(options.host, ec);
  if (ec) return InvalidArgument("--host: '" + options.host + "' is not an IP address");
  tcp::endpoint endpoint(address, options.port);
  s->acceptor_ = std::make_unique<tcp::acceptor>(net::make_strand(s->shared_->ioc));
  s->acceptor_->open(endpoint.protocol(), ec);
  if (!ec) s->acceptor_->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s->acceptor_->bind(endpoint, ec);
  if (!ec) s->acceptor_->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Unavailable("cannot listen on " + options.host + ":" + std::to_string(options.port) + ": " + ec.message());
  }
  s->port_ = s->acceptor_->local_endpoint().port();
  return s;
}

HttpServer::~HttpServer() {
  Stop();
  acceptor_.reset();  // before the io_context it belongs to
}

void HttpServer::Start() {
  shared_->work.emplace(shared_->ioc.get_executor());
  Accept();
  for (int i = 0; i < thread_count_; ++i) {
    threads_.emplace_back([this] { shared_->ioc.run(); });
  }
}

void HttpServer::Accept() {
  acceptor_->async_accept(net::make_strand(shared_->ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor_->is_open()) return;
      spdlog::warn("event=accept_failed error={}", LogValue(ec.message()));
    } else {
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<Session>(std::move(socket), shared_.get())->Start();
    }
    if (acceptor_->is_open()) Accept();
  });
}

void HttpServer::StopAccepting() {
  shared_->draining.store(true);
  net::post(acceptor_->get_executor(), [this] {
    beast::error_code ec;
    acceptor_->close(ec);
  });
}

void HttpServer::Stop() {
  if (stopped_.exchange(true)) return;
  shared_->work.reset();
  shared_->ioc.stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace vigil
