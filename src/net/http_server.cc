#include "net/http_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>

#include <algorithm>

#include "core/logging.h"
#include "core/thread_name.h"
#include "net/address.h"
#include "protocol/oip_json.h"
#include "protocol/tls.h"

namespace vigil {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// What the dispatcher needs of a connection, plain or TLS.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void Handle(HttpRequest&& request) = 0;
};

}  // namespace

// One I/O thread's io_context and the requests it has read but not yet
// handed to the handler. Touched only by that thread.
struct IoContextState {
  net::io_context ioc{1};
  struct Pending {
    std::shared_ptr<SessionBase> session;
    HttpRequest request;
  };
  std::vector<Pending> pending;
  bool dispatch_posted = false;
};

struct HttpServer::Shared {
  // One io_context per I/O thread: a connection lives on one of them, so its
  // handlers never run concurrently and need no strand.
  std::vector<std::unique_ptr<IoContextState>> contexts;
  // Keep run() going while requests wait in a scheduler with no I/O pending
  // (e.g. after the acceptor closes during a drain); reset by Stop().
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work;
  std::atomic<size_t> next_context{0};
  Handler handler;
  Options options;
  std::shared_ptr<net::ssl::context> tls;  // null: plain HTTP
  std::atomic<int64_t>* in_flight = nullptr;
  std::atomic<bool> draining{false};
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> buffered_bytes{0};  // reserved by bodies being received

  // Reserves `bytes` of the body budget; false (nothing reserved) when it
  // would go over.
  bool Reserve(size_t bytes) {
    const auto n = static_cast<int64_t>(bytes);
    const int64_t before = buffered_bytes.fetch_add(n);
    if (before + n > static_cast<int64_t>(options.max_buffered_bytes)) {
      buffered_bytes.fetch_sub(n);
      return false;
    }
    if (options.metrics) options.metrics->body_bytes_buffered->Add(static_cast<double>(n));
    return true;
  }
  void Release(size_t bytes) {
    if (bytes == 0) return;
    buffered_bytes.fetch_sub(static_cast<int64_t>(bytes));
    if (options.metrics) options.metrics->body_bytes_buffered->Add(-static_cast<double>(bytes));
  }
};

namespace {

// How often each connection checks its deadlines: often while a body is on
// its way, rarely while it only idles.
constexpr auto kBodyDeadlineCheck = std::chrono::seconds(1);
constexpr auto kIdleDeadlineCheck = std::chrono::seconds(5);
// A chunked body's reservation grows by this much at a time.
constexpr size_t kChunkedReservation = 1 << 20;

// One connection. `kTls`: the stream is TLS over the socket; the handshake
// comes first (a client that speaks plain HTTP to it fails there and is
// closed), and a closing connection sends TLS's close_notify.
template <bool kTls>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<kTls>> {
  using Stream = std::conditional_t<kTls, net::ssl::stream<tcp::socket>, tcp::socket>;

 public:
  Session(tcp::socket socket, HttpServer::Shared* shared, IoContextState* context)
      : socket_(MakeStream(std::move(socket), shared)),
        deadline_timer_(socket_.get_executor()),
        shared_(shared),
        context_(context) {
    beast::error_code ec;
    const auto remote = Socket().remote_endpoint(ec);
    if (!ec) {
      info_.peer = remote.address().to_string() + ":" + std::to_string(remote.port());
      info_.address = remote.address().to_string();
      info_.loopback = IsLoopbackAddress(info_.address);
    }
    shared_->connections.fetch_add(1);
    if (shared_->options.metrics) shared_->options.metrics->connections->Add(1);
  }
  ~Session() override {
    shared_->Release(reserved_);
    shared_->connections.fetch_sub(1);
    if (shared_->options.metrics) shared_->options.metrics->connections->Add(-1);
  }

  // Hands a request that was read to the handler; the reply is written on
  // this connection's thread.
  void Handle(HttpRequest&& req) override {
    const bool keep_alive = req.keep_alive();
    const unsigned version = req.version();
    auto self = shared_from_this();
    shared_->handler(std::move(req), info_, [self, keep_alive, version](HttpResponse&& res) {
      res.version(version);
      const bool close = !keep_alive || self->shared_->draining.load();
      res.keep_alive(!close);
      // On the connection's own thread (the usual case: the batch ran
      // inline) this writes at once; from a worker it is queued there.
      net::dispatch(self->socket_.get_executor(),
                    [self, res = std::move(res), close]() mutable { self->Write(std::move(res), close); });
    });
  }

  void Start() {
    last_activity_ = std::chrono::steady_clock::now();
    // TLS: the handshake is held to the body timeout; one that fails (a
    // plain-text client, a certificate the client CA did not sign) closes.
    handshaking_ = kTls;
    body_started_ = last_activity_;
    ArmDeadlineTimer();
    if constexpr (kTls) {
      socket_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        self->handshaking_ = false;
        if (ec) {
          if (self->shared_->options.metrics) self->shared_->options.metrics->tls_handshake_failures->Inc();
          return self->CloseSocket();
        }
        self->ReadNext();
      });
    } else {
      ReadNext();
    }
  }

 private:
  using std::enable_shared_from_this<Session<kTls>>::shared_from_this;

  static Stream MakeStream(tcp::socket socket, HttpServer::Shared* shared) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *shared->tls);
    } else {
      return socket;
    }
  }
  tcp::socket& Socket() {
    if constexpr (kTls) {
      return socket_.next_layer();
    } else {
      return socket_;
    }
  }
  // Closes connections idle (no request in progress) for longer than the
  // idle timeout, and answers 408 to a body that is taking longer than the
  // body timeout. Checked periodically rather than armed per request.
  void ArmDeadlineTimer() {
    deadline_timer_.expires_after(reading_body_ || handshaking_ ? kBodyDeadlineCheck : kIdleDeadlineCheck);
    deadline_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || !self->Socket().is_open()) return;
      const auto now = std::chrono::steady_clock::now();
      const auto& o = self->shared_->options;
      if (self->handshaking_ && now - self->body_started_ > o.body_timeout) return self->CloseSocket();
      if (self->reading_body_ && now - self->body_started_ > o.body_timeout) {
        if (o.metrics) o.metrics->bodies_timed_out->Inc();
        return self->Reject(408, "the request body did not arrive within " +
                                     std::to_string(o.body_timeout.count() / 1000) + " s (--body-timeout)");
      }
      if (!self->busy_ && !self->reading_body_ && !self->handshaking_ && now - self->last_activity_ > o.idle_timeout)
        return self->Close();
      self->ArmDeadlineTimer();
    });
  }

  void ReadNext() {
    parser_.emplace();
    parser_->body_limit(shared_->options.max_body_bytes);
    parser_->header_limit(64 * 1024);
    http::async_read_header(socket_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  // Clients such as curl send large bodies only after "100 Continue"
  // (otherwise they wait a second first); a body that is already known to
  // be too large is refused before it is sent.
  void OnHeader(beast::error_code ec, size_t) {
    if (ec || parser_->is_done()) return OnRead(ec, 0);
    const auto length = parser_->content_length();
    const auto expect = parser_->get()[http::field::expect];
    if (!beast::iequals(expect, "100-continue")) {
      // Usually the body arrived with the header: parse it from the buffer
      // without another trip through the event loop (and without touching
      // the shared budget: those bytes are already here).
      while (!parser_->is_done() && buffer_.size() > 0) {
        const size_t used = parser_->put(buffer_.data(), ec);
        buffer_.consume(used);
        if (ec == http::error::need_more) {
          ec = {};
          break;
        }
        if (ec) return OnRead(ec, 0);
        if (used == 0) break;
      }
      if (parser_->is_done()) return OnRead(ec, 0);
      return ReadBody(length);
    }
    if (length && *length > shared_->options.max_body_bytes) return OnRead(http::error::body_limit, 0);
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                     [self = shared_from_this(), length](beast::error_code write_ec, size_t) {
                       if (write_ec) return self->Close();
                       self->ReadBody(length);
                     });
  }

  // The rest of the body is still on the wire: it is held against the
  // shared budget (its declared length, or a chunked body as it grows) and
  // must arrive within the body timeout.
  void ReadBody(boost::optional<uint64_t> length) {
    const size_t want = length ? static_cast<size_t>(std::min<uint64_t>(*length, shared_->options.max_body_bytes))
                               : kChunkedReservation;
    if (!Grow(want)) return;
    chunked_ = !length;
    reading_body_ = true;
    body_started_ = std::chrono::steady_clock::now();
    ReadMore();
  }

  void ReadMore() {
    http::async_read_some(socket_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->rejected_) return;  // answered already (408); the connection is closing
      if (ec || self->parser_->is_done()) {
        self->reading_body_ = false;
        return self->OnRead(ec, 0);
      }
      const size_t have = self->parser_->get().body().size();
      if (self->chunked_ && have + kChunkedReservation / 2 > self->reserved_ && !self->Grow(have + kChunkedReservation))
        return;
      self->ReadMore();
    });
  }

  // Raises this request's reservation to `bytes`; answers 503 and closes
  // when the budget cannot cover it.
  bool Grow(size_t bytes) {
    bytes = std::min(bytes, shared_->options.max_body_bytes);
    if (bytes <= reserved_) return true;
    if (!shared_->Reserve(bytes - reserved_)) {
      if (shared_->options.metrics) shared_->options.metrics->bodies_refused->Inc();
      Reject(503, "the server holds too many request bodies being received (--max-buffered-bytes " +
                      std::to_string(shared_->options.max_buffered_bytes) + "); retry later");
      return false;
    }
    reserved_ = bytes;
    return true;
  }

  // Answers `status` with `message` and closes the connection. A read may
  // still be pending (the body timeout): whatever it completes with is
  // ignored, so nothing else is written beside this answer.
  void Reject(unsigned status, const std::string& message) {
    rejected_ = true;
    reading_body_ = false;
    busy_ = true;
    shared_->in_flight->fetch_add(1);
    HttpResponse res = MakeResponse(status, ErrorJson(message));
    if (status == 503) res.set(http::field::retry_after, "1");
    res.keep_alive(false);
    Write(std::move(res), true);
  }

  void OnRead(beast::error_code ec, size_t) {
    last_activity_ = std::chrono::steady_clock::now();
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof || ec == net::error::bad_descriptor) {
      return Close();
    }
    busy_ = true;
    shared_->in_flight->fetch_add(1);
    if (ec) {
      // Malformed or oversized: answer, then close.
      const bool too_big = ec == http::error::body_limit;
      HttpResponse res =
          MakeResponse(too_big ? 413 : 400, ErrorJson(too_big ? "request body exceeds the limit of " +
                                                                    std::to_string(shared_->options.max_body_bytes) +
                                                                    " bytes (--max-body-bytes)"
                                                              : "malformed HTTP request: " + ec.message()));
      res.keep_alive(false);
      return Write(std::move(res), true);
    }
    // Requests that became readable in the same turn of the event loop are
    // handed over together, after every ready socket has been read.
    context_->pending.push_back({shared_from_this(), parser_->release()});
    if (!context_->dispatch_posted) {
      context_->dispatch_posted = true;
      net::post(socket_.get_executor(), [context = context_, shared = shared_] { Dispatch(*context, *shared); });
    }
  }

  static void Dispatch(IoContextState& context, HttpServer::Shared& shared) {
    std::vector<IoContextState::Pending> batch;
    batch.swap(context.pending);
    context.dispatch_posted = false;
    std::shared_ptr<void> scope = shared.options.dispatch_scope ? shared.options.dispatch_scope() : nullptr;
    for (auto& p : batch) p.session->Handle(std::move(p.request));
  }

  void Write(HttpResponse&& res, bool close) {
    response_ = std::make_unique<HttpResponse>(std::move(res));
    response_->prepare_payload();
    http::async_write(socket_, *response_, [self = shared_from_this(), close](beast::error_code ec, size_t) {
      self->shared_->in_flight->fetch_sub(1);
      self->response_.reset();
      // The request is answered: its body's reservation goes back.
      self->shared_->Release(self->reserved_);
      self->reserved_ = 0;
      self->busy_ = false;
      self->last_activity_ = std::chrono::steady_clock::now();
      if (ec || close) return self->Close();
      self->ReadNext();
    });
  }

  void Close() {
    if constexpr (kTls) {
      // close_notify first, so the client knows the answer was whole; a
      // client that never answers it is cut off by the socket close below.
      if (!shutting_down_) {
        shutting_down_ = true;
        deadline_timer_.cancel();
        deadline_timer_.expires_after(std::chrono::seconds(1));
        deadline_timer_.async_wait([self = shared_from_this()](beast::error_code) { self->CloseSocket(); });
        socket_.async_shutdown([self = shared_from_this()](beast::error_code) { self->CloseSocket(); });
        return;
      }
    }
    CloseSocket();
  }

  void CloseSocket() {
    beast::error_code ec;
    Socket().shutdown(tcp::socket::shutdown_send, ec);
    Socket().close(ec);
    deadline_timer_.cancel();
  }

  Stream socket_;
  RequestInfo info_;
  net::steady_timer deadline_timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::unique_ptr<HttpResponse> response_;
  HttpServer::Shared* shared_;  // outlives every session (owns the io_contexts)
  IoContextState* context_;     // the I/O thread this connection lives on
  std::chrono::steady_clock::time_point last_activity_;
  std::chrono::steady_clock::time_point body_started_;
  size_t reserved_ = 0;         // of the body budget, for the request being read or handled
  bool reading_body_ = false;   // the rest of a body is on its way
  bool chunked_ = false;        // of unknown length: its reservation grows with it
  bool rejected_ = false;       // answered with an error while reading; the connection closes
  bool busy_ = false;           // a request is being handled or answered
  bool handshaking_ = false;    // TLS: the handshake is under way
  bool shutting_down_ = false;  // TLS: close_notify sent
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
  s->thread_count_ =
      options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < s->thread_count_; ++i) s->shared_->contexts.push_back(std::make_unique<IoContextState>());
  if (!options.tls_cert.empty() || !options.tls_key.empty()) {
    VIGIL_ASSIGN_OR_RETURN(s->shared_->tls,
                           MakeServerTlsContext({options.tls_cert, options.tls_key, options.tls_client_ca}));
  } else if (!options.tls_client_ca.empty()) {
    return InvalidArgument("--tls-client-ca needs --tls-cert and --tls-key");
  }
  beast::error_code ec;
  auto address = net::ip::make_address(options.host, ec);
  if (ec) return InvalidArgument("--host: '" + options.host + "' is not an IP address");
  tcp::endpoint endpoint(address, options.port);
  s->acceptor_ = std::make_unique<tcp::acceptor>(s->shared_->contexts[0]->ioc);
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
  backoff_timer_.reset();
  acceptor_.reset();  // before the io_context it belongs to
}

void HttpServer::Start() {
  for (auto& c : shared_->contexts) shared_->work.emplace_back(c->ioc.get_executor());
  Accept();
  for (auto& c : shared_->contexts) {
    threads_.emplace_back([ioc = &c->ioc] {
      SetThreadName("vigil-http");
      ioc->run();
    });
  }
}

int64_t HttpServer::Connections() const { return shared_->connections.load(); }

void HttpServer::Accept() {
  // Connections are spread over the I/O threads round-robin.
  IoContextState* target = shared_->contexts[shared_->next_context.fetch_add(1) % shared_->contexts.size()].get();
  acceptor_->async_accept(target->ioc, [this, target](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor_->is_open()) return;
      return BackOff(ec);
    }
    backoff_ = std::chrono::milliseconds(0);
    if (shared_->connections.load() >= static_cast<int64_t>(shared_->options.max_connections)) {
      Refuse(std::move(socket));
    } else {
      socket.set_option(tcp::no_delay(true), ec);
      if (shared_->tls) {
        std::make_shared<Session<true>>(std::move(socket), shared_.get(), target)->Start();
      } else {
        std::make_shared<Session<false>>(std::move(socket), shared_.get(), target)->Start();
      }
    }
    if (acceptor_->is_open()) Accept();
  });
}

void HttpServer::BackOff(const boost::system::error_code& ec) {
  if (shared_->options.metrics) shared_->options.metrics->accept_errors->Inc();
  // Out of file descriptors (or memory) the same accept fails again at
  // once: without a pause this loop would spin and flood the log.
  backoff_ = std::clamp(backoff_ * 2, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
  ++accept_errors_unlogged_;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_accept_log_ >= std::chrono::seconds(10)) {
    spdlog::warn("event=accept_failed error={} failures={} retry_in_ms={} connections={}", LogValue(ec.message()),
                 accept_errors_unlogged_, backoff_.count(), shared_->connections.load());
    last_accept_log_ = now;
    accept_errors_unlogged_ = 0;
  }
  if (!backoff_timer_) backoff_timer_ = std::make_unique<net::steady_timer>(acceptor_->get_executor());
  backoff_timer_->expires_after(backoff_);
  backoff_timer_->async_wait([this](beast::error_code wait_ec) {
    if (!wait_ec && acceptor_->is_open()) Accept();
  });
}

void HttpServer::Refuse(tcp::socket socket) {
  if (shared_->options.metrics) shared_->options.metrics->connections_refused->Inc();
  if (shared_->tls) {
    // A TLS client cannot read a plain answer: it sees the connection close.
    beast::error_code ec;
    socket.close(ec);
    return;
  }
  // A best-effort answer without waiting: the socket's send buffer takes it
  // whole, and a client that does not read it loses nothing it was owed.
  static const std::string kBody =
      ErrorJson("the server has too many open connections (--max-connections); retry later");
  static const std::string kAnswer =
      "HTTP/1.1 503 Service Unavailable\r\nServer: vigil\r\nRetry-After: 1\r\n"
      "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
      std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
  beast::error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(net::buffer(kAnswer), ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

void HttpServer::StopAccepting() {
  shared_->draining.store(true);
  net::post(acceptor_->get_executor(), [this] {
    beast::error_code ec;
    acceptor_->close(ec);
    if (backoff_timer_) backoff_timer_->cancel();
  });
}

void HttpServer::Stop() {
  if (stopped_.exchange(true)) return;
  shared_->work.clear();
  for (auto& c : shared_->contexts) c->ioc.stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace vigil
